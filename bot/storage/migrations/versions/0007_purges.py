"""the retention purge's record: when, which kind, how many (counts only)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "purges",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("ran_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("cutoff", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purges")),
    )
    op.create_index(op.f("ix_purges_ran_at"), "purges", ["ran_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_purges_ran_at"), table_name="purges")
    op.drop_table("purges")
