"""ideas may outlive their resident as anonymous text; one current rating per
resident and statement (duplicates removed, the newest kept), with the time of
the last change

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# every row for which a newer one of the same resident and statement exists (the same time: the higher id)
DROP_OLDER_DUPLICATES = """
DELETE FROM feedback
WHERE EXISTS (
    SELECT 1 FROM feedback AS newer
    WHERE newer.resident_id = feedback.resident_id
      AND newer.statement = feedback.statement
      AND (newer.created_at > feedback.created_at
           OR (newer.created_at = feedback.created_at AND newer.id > feedback.id))
)
"""


def upgrade() -> None:
    with op.batch_alter_table("ideas") as batch:
        batch.alter_column("resident_id", existing_type=Id, nullable=True)

    op.execute(DROP_OLDER_DUPLICATES)
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE feedback SET updated_at = created_at")
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(), nullable=False)
        batch.create_unique_constraint(batch.f("uq_feedback_resident_id_statement"), ["resident_id", "statement"])


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_constraint(batch.f("uq_feedback_resident_id_statement"), type_="unique")
        batch.drop_column("updated_at")
    op.execute("DELETE FROM ideas WHERE resident_id IS NULL")  # anonymous ideas cannot go back
    with op.batch_alter_table("ideas") as batch:
        batch.alter_column("resident_id", existing_type=Id, nullable=False)
