"""What the keeper weighs of each image, and the user's "not a duplicate" feedback.

Rows indexed before get no traits (NULL): the keeper then decides by what it has.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("detail", sa.Float))
        batch.add_column(sa.Column("noise", sa.Float))
        batch.add_column(sa.Column("taken_at", sa.String(32)))
        batch.add_column(sa.Column("camera", sa.String(128)))
    op.create_table(
        "not_duplicates",
        sa.Column("first", sa.String(64), primary_key=True),
        sa.Column("second", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("not_duplicates")
    with op.batch_alter_table("images") as batch:
        for column in ("camera", "taken_at", "noise", "detail"):
            batch.drop_column(column)
