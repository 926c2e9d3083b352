"""Stored duplicate groups: what `duplicates` decided, read back while the catalog is unchanged.

Older catalogs start with none: their next `duplicates` decides and stores them.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as models.BigInt: 64-bit on a server

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", INT, primary_key=True),
        sa.Column("key", sa.String, nullable=False, unique=True),
        sa.Column("generation", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("decisions")
