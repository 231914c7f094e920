"""a delivery may act on another one: the recall of a delivered Telegram message

Revision ID: 0007_delivery_recalls
Revises: 0006_audit_events
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_delivery_recalls"
down_revision: str | None = "0006_audit_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_ORIGIN = sa.text("origin_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_id", sa.BigInteger(), nullable=True))
    # Unique: a delivery is recalled once, even when two recalls race. Partial: only recall
    # deliveries carry an origin, so the index costs a broadcast's COPY nothing.
    op.create_index(
        "ix_message_recipients_origin_id",
        "message_recipients",
        ["origin_id"],
        unique=True,
        postgresql_where=HAS_ORIGIN,
        sqlite_where=HAS_ORIGIN,
    )


def downgrade() -> None:
    op.drop_index("ix_message_recipients_origin_id", table_name="message_recipients")
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_column("origin_id")
