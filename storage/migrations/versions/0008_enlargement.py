"""What reducing an image would lose (`neardup.indexer.enlargement`), so the keeper can tell an
enlarged copy, which has more pixels and no more detail, from its original.

Rows indexed before get NULL: the keeper then decides by the traits it has.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("enlargement", sa.LargeBinary))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("enlargement")
