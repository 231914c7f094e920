"""recipient channel preferences (unsubscribe, STOP, per-typology choices)

Revision ID: 0008_recipient_preferences
Revises: 0007_delivery_recalls
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_recipient_preferences"
down_revision: str | None = "0007_delivery_recalls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "recipient_channel_preferences"
WITH_TYPOLOGY = sa.text("typology_id IS NOT NULL")
GENERAL = sa.text("typology_id IS NULL")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("recipient_kind", sa.String(length=40), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("typology_id", sa.Integer(), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("provider_synced", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["typology_id"],
            ["message_typologies.id"],
            name=op.f("fk_recipient_channel_preferences_typology_id_message_typologies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipient_channel_preferences")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            "uq_recipient_channel_preferences_typology",
            ["recipient_kind", "recipient_id", "channel", "typology_id"],
            unique=True,
            postgresql_where=WITH_TYPOLOGY,
            sqlite_where=WITH_TYPOLOGY,
        )
        batch_op.create_index(
            "uq_recipient_channel_preferences_general",
            ["recipient_kind", "recipient_id", "channel"],
            unique=True,
            postgresql_where=GENERAL,
            sqlite_where=GENERAL,
        )
        batch_op.create_index(
            "ix_recipient_channel_preferences_recipient",
            ["recipient_kind", "recipient_id", "channel"],
            unique=False,
        )
        batch_op.create_index(
            "ix_recipient_channel_preferences_channel", ["channel", "provider_synced"], unique=False
        )
    # The Telegram opt-outs of /stop become preferences too (the column stays, kept in step).
    for kind, table in (("customer", "customers"), ("external_subject", "external_subjects")):
        op.execute(
            f"INSERT INTO {TABLE} "  # noqa: S608 - fixed names
            "(recipient_kind, recipient_id, channel, typology_id, accepted, source, "
            "provider_synced, updated_at) "
            f"SELECT '{kind}', id, 'telegram', NULL, false, 'person', false, CURRENT_TIMESTAMP "
            f"FROM {table} WHERE telegram_opted_out"
        )


def downgrade() -> None:
    op.drop_table(TABLE)
