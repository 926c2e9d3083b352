"""Which images were read again because an older neardup decoded their files otherwise.

`indexer.decode.DECODING` counts the ways files become pixels. An image whose unchanged file a
newer version decodes otherwise is read again, and its content (`Catalog.feature_ids`) changes
with this column, so that indexes and stored pair evidence made from its old features are
brought up to date as for an edited file. Rows indexed before get NULL: read as their bytes came.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("redecoded", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("redecoded")
