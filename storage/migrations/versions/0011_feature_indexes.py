"""Feature rows indexed by (name, view, image id): a read of every image's hash or vector rows
in id order walks the index instead of sorting them.

The indexes of 0002 ended at the view, so SQLite read every row of one feature and sorted the
rows, 2.5 KB vectors included, in a temporary B-tree, which took most of the time of reading a
large catalog's vectors. With the image id in the index, the ids alone (`Catalog.feature_ids`)
are read from the index without touching a row. Each new index starts with the old one's
columns, so it also serves every query the old one did, and replaces it.

Revision ID: 0011
"""

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.drop_index("ix_hashes_algo", table_name="hashes")
    op.drop_index("ix_vectors_model", table_name="vectors")
    op.create_index("ix_hashes_feature", "hashes", ["algo", "view", "image_id"])
    op.create_index("ix_vectors_feature", "vectors", ["model", "view", "image_id"])


def downgrade() -> None:
    op.drop_index("ix_vectors_feature", table_name="vectors")
    op.drop_index("ix_hashes_feature", table_name="hashes")
    op.create_index("ix_vectors_model", "vectors", ["model", "view"])
    op.create_index("ix_hashes_algo", "hashes", ["algo", "view"])
