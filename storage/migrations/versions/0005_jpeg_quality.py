"""The JPEG quality an image was last saved at, so the keeper can prefer the least lossy copy.

Rows indexed before get NULL: the keeper then decides by the traits it has.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("jpeg_quality", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("jpeg_quality")
