"""Alembic runs migrations on the connection `storage.schema` hands it, in its transaction."""

from alembic import context

from neardup.storage.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
