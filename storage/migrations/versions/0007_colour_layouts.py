"""Colour layouts: each image's 32 x 32 mean colours, which tell a recoloured variant from a copy.

Older catalogs start with none; the next `neardup index` computes them from the files
(`pipeline.fill_colour_layouts`), and until then their pairs are judged without them.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as models.BigInt: 64-bit on a server

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "colour_layouts",
        sa.Column("image_id", INT, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("cells", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("colour_layouts")
