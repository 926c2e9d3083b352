"""The JPEG quality an image was saved at, estimated from its quantisation tables.

Rows indexed before have none (NULL).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("jpeg_quality", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("jpeg_quality")
