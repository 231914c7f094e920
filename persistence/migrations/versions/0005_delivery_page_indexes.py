"""a message's deliveries in id order, all or by status (its pages): one index for both

Revision ID: 0005_delivery_page_indexes
Revises: 0004_user_passwords
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_delivery_page_indexes"
down_revision: str | None = "0004_user_passwords"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_message_recipients_message_status")
        batch_op.create_index(
            "ix_message_recipients_message_id", ["message_id", "id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_message_recipients_message_id")
        batch_op.create_index(
            "ix_message_recipients_message_status", ["message_id", "status"], unique=False
        )
