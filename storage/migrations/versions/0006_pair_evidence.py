"""Stored pair evidence: what `duplicates` computed, so that it need not compute it again.

Older catalogs start with none: their first `duplicates` computes and stores it.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as models.BigInt: 64-bit on a server

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "evidence_sets",
        sa.Column("id", INT, primary_key=True),
        sa.Column("key", sa.String, nullable=False, unique=True),
        sa.Column("generation", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "evidence_segments",
        sa.Column("id", INT, primary_key=True),
        sa.Column("set_id", INT, sa.ForeignKey("evidence_sets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("images", INT, nullable=False),
        sa.Column("pairs", INT, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_evidence_segments_set_id", "evidence_segments", ["set_id"])


def downgrade() -> None:
    op.drop_index("ix_evidence_segments_set_id", "evidence_segments")
    op.drop_table("evidence_segments")
    op.drop_table("evidence_sets")
