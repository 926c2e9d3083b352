"""What reducing an image would lose (`neardup.indexer.enlargement`), so the keeper can tell an
enlarged or blurred copy from its original. It replaces the gradient percentile ("detail"),
which a caption's sharp text raised; that column stays (see `models.Image.detail`).

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
