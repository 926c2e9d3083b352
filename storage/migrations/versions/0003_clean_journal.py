"""The clean-up journal: runs of `neardup clean` and every file action they take.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

# 64-bit on PostgreSQL (sizes, mtime_ns); exactly INTEGER, as always, on SQLite.
INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "clean_runs",
        sa.Column("id", INT, primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("plan_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("undone_at", sa.DateTime),
    )
    op.create_index("ix_clean_runs_plan_digest", "clean_runs", ["plan_digest"])
    op.create_table(
        "clean_entries",
        sa.Column("id", INT, primary_key=True),
        sa.Column("run_id", INT, sa.ForeignKey("clean_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", INT, nullable=False),
        sa.Column("group_no", INT, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("destination", sa.String),
        sa.Column("keeper", sa.String, nullable=False),
        sa.Column("recovery", sa.String),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", INT, nullable=False),
        sa.Column("mtime_ns", INT),
        sa.Column("mode", INT),
        sa.Column("keeper_sha256", sa.String(64)),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("planned_at", sa.DateTime, nullable=False),
        sa.Column("done_at", sa.DateTime),
        sa.Column("undone_at", sa.DateTime),
        sa.UniqueConstraint("run_id", "seq"),
    )
    op.create_index("ix_clean_entries_run_id", "clean_entries", ["run_id"])
    op.create_index("ix_clean_entries_source", "clean_entries", ["source"])


def downgrade() -> None:
    op.drop_table("clean_entries")
    op.drop_table("clean_runs")
