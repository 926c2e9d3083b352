"""Softness: the share of an image's gradient energy that survives halving it, so the keeper
can tell an upscaled copy (larger, but with no finest detail) from its original.

Rows indexed before get NULL: the keeper then decides by the traits it has.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("softness", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("softness")
