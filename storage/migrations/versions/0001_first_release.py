"""The schema of the first release: hash and vector names carried their view ("pdq@box"),
models lived in the settings table. Catalogs made then have no revision recorded; they are
stamped with this one before being upgraded.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

# 64-bit on PostgreSQL (sizes, mtime_ns); exactly INTEGER, as always, on SQLite.
INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", INT, primary_key=True),
        sa.Column("path", sa.String, nullable=False, unique=True),
        sa.Column("size", INT, nullable=False),
        sa.Column("mtime_ns", INT, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("width", INT),
        sa.Column("height", INT),
        sa.Column("format", sa.String(16)),
        sa.Column("quality", INT),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("error", sa.String),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])
    for table, name in (("hashes", "algo"), ("vectors", "model")):
        op.create_table(
            table,
            sa.Column("image_id", INT, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
            sa.Column(name, sa.String(16 if table == "hashes" else 32), primary_key=True),
            sa.Column("bits" if table == "hashes" else "data", sa.LargeBinary, nullable=False),
        )
        op.create_index(f"ix_{table}_{name}", table, [name])
    for table in ("keypoints", "mirrored_keypoints"):
        op.create_table(
            table,
            sa.Column("image_id", INT, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("points", sa.LargeBinary, nullable=False),
            sa.Column("descriptors", sa.LargeBinary, nullable=False),
        )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String, nullable=False),
    )


def downgrade() -> None:
    for table in ("settings", "mirrored_keypoints", "keypoints", "vectors", "hashes", "images"):
        op.drop_table(table)
