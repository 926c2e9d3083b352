"""The colour around each stored keypoint (`neardup.indexer.features`), so verification can
tell the same drawing in another colour from a copy (`neardup.search.recolour`).

Rows indexed before get NULL until the next `neardup index` computes them from the files
(`pipeline.fill_keypoints`); until then their pairs are judged without them.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    for table in ("keypoints", "mirrored_keypoints"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("colours", sa.LargeBinary))


def downgrade() -> None:
    for table in ("keypoints", "mirrored_keypoints"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("colours")
