"""index the inbox by sender, so processing one resident's messages in order
does not scan every pending message

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_messages_sender", "inbound_messages", ["channel", "address", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_sender", table_name="inbound_messages")
