"""a personalised broadcast's deliveries carry their placeholder values

Revision ID: 0009_delivery_params
Revises: 0008_recipient_preferences
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_delivery_params"
down_revision: str | None = "0008_recipient_preferences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain JSON (not JSONB): written once, read back whole, never queried; cheaper to COPY.
    # Nullable, no default: an unpersonalised broadcast's rows stay as they were (NULL costs
    # the COPY nothing).
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_recipients", schema=None) as batch_op:
        batch_op.drop_column("params")
