"""SQLAlchemy 2 typed mappings: the whole Herald data model.

History (messages, deliveries, invoices) never disappears with the people or typologies it refers
to: foreign keys from history use ``SET NULL``, and only a message owns its deliveries.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY, so big ids are plain integers there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are aware and UTC in Python on both databases (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        utc = aware.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JsonType,
        datetime: UTCDateTime(),
    }


class Direction(enum.StrEnum):
    SENT = "sent"
    RECEIVED = "received"


class MessageStatus(enum.StrEnum):
    """Lifecycle of a whole broadcast on one channel."""

    SCHEDULED = "scheduled"  # waiting for send_at
    QUEUED = "queued"  # waiting for its first delivery to be handed out
    SENDING = "sending"  # being delivered: some deliveries were handed to the provider
    DONE = "done"  # every delivery reached a final status
    CANCELLED = "cancelled"
    RECEIVED = "received"  # inbound message


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCESS = "success"
    UNKNOWN = "unknown"  # accepted by the provider, delivery report not in yet (SMS)
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    RECEIVED = "received"  # inbound: the recipient wrote to us
    RECALLED = "recalled"  # delivered, then deleted from the chat by a recall


FINAL_DELIVERY_STATUSES = frozenset(
    {
        DeliveryStatus.SUCCESS,
        DeliveryStatus.FAILED,
        DeliveryStatus.INVALID,
        DeliveryStatus.DUPLICATE,
        DeliveryStatus.BLOCKED,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.RECEIVED,
        DeliveryStatus.RECALLED,
    }
)


def _now_default() -> Any:
    return func.now()


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=_now_default())


# --- administrators and API keys -----------------------------------------------------------


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    # argon2id (persistence.users); None: this user cannot log in to the console (API keys only).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # The console's language (en|it) and IANA time zone; None: from the browser / the default.
    language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # The user's own addresses: where "send me a test" goes (none: that channel is skipped).
    email: Mapped[str | None] = mapped_column(String(254))
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)


class TelegramLinkCode(Base):
    """A one-time code a user shows the bot (``/link CODE``) to link their own Telegram chat;
    stored as its SHA-256 only, good for a few minutes and once."""

    __tablename__ = "telegram_link_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=_now_default())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


# --- recipients ------------------------------------------------------------------------------


class TypologyMixin(TimestampMixin):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class CustomerTypology(TypologyMixin, Base):
    __tablename__ = "customer_typologies"


class ExternalSubjectTypology(TypologyMixin, Base):
    __tablename__ = "external_subject_typologies"


class RecipientMixin(TimestampMixin):
    """Columns every recipient kind shares (the seed's DjangoWebixSender)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    vat_number: Mapped[str | None] = mapped_column(String(32))
    fiscal_code: Mapped[str | None] = mapped_column(String(32))
    sms: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    telegram_opted_out: Mapped[bool] = mapped_column(default=False)
    telegram_blocked: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The caller's own identifier (e.g. the customer code of their accounting system): what a
    # repeated CSV import matches on. Unique per kind and owner (see external_id_indexes).
    external_id: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default(), onupdate=func.now())


def external_id_indexes(table: str) -> tuple[Index, Index]:
    """``external_id`` is unique per owner; among records with no owner it is unique too (a
    plain unique index would let NULL owners repeat it)."""
    unowned = text("owner_id IS NULL")
    return (
        Index(f"uq_{table}_owner_external_id", "owner_id", "external_id", unique=True),
        Index(
            f"uq_{table}_unowned_external_id",
            "external_id",
            unique=True,
            postgresql_where=unowned,
            sqlite_where=unowned,
        ),
    )


class Customer(RecipientMixin, Base):
    __tablename__ = "customers"
    __table_args__ = external_id_indexes("customers")

    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    typology_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_typologies.id", ondelete="SET NULL"), index=True
    )


class ExternalSubject(RecipientMixin, Base):
    __tablename__ = "external_subjects"
    __table_args__ = external_id_indexes("external_subjects")

    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    typology_id: Mapped[int | None] = mapped_column(
        ForeignKey("external_subject_typologies.id", ondelete="SET NULL"), index=True
    )
    # A subject may act for a customer (e.g. an accountant): sends to one reach the other.
    related_customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )


# --- messages and deliveries -------------------------------------------------------------------


class MessageTypology(TypologyMixin, Base):
    __tablename__ = "message_typologies"


class MessageTemplate(TimestampMixin, Base):
    """A saved message: a name (unique per owner), a typology and numbered versions of its
    content. Editing writes a new version; a broadcast names the version it was sent from."""

    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(150))
    typology_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_typologies.id", ondelete="SET NULL"), index=True
    )
    current_version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default())

    __table_args__ = (UniqueConstraint("owner_id", "name"),)


class MessageTemplateVersion(Base):
    """One version of a template's content: ``content`` holds the default text (subject, body,
    body_html, format, buttons) and per-channel replacements (``{"channels": {"sms": {...}}}``)."""

    __tablename__ = "message_template_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("message_templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=_now_default())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (UniqueConstraint("template_id", "version"),)


class Message(TimestampMixin, Base):
    """One broadcast on one channel (the seed's MessageSent), or one inbound message."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broadcast_id: Mapped[str] = mapped_column(String(36), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    typology_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_typologies.id", ondelete="SET NULL"), index=True
    )
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(String(10), default=Direction.SENT)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cost_per_unit: Mapped[Decimal] = mapped_column(Numeric(12, 5), default=Decimal(0))
    invoiced: Mapped[bool] = mapped_column(default=False)
    sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    sender_name: Mapped[str] = mapped_column(String(150), default="")
    send_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED)
    finished_at: Mapped[datetime | None]
    total: Mapped[int] = mapped_column(default=0)
    # The saved template (and its version) the broadcast was written from, if any.
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_templates.id", ondelete="SET NULL"), index=True
    )
    template_version: Mapped[int | None] = mapped_column(Integer)
    # "Send me a test": to the sender's own addresses; never billed nor counted as a broadcast.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    __table_args__ = (
        Index("ix_messages_status_send_at", "status", "send_at"),
        Index("ix_messages_created_at", "created_at"),
    )


class MessageRecipient(Base):
    """One delivery: a message to one recipient address on the message's channel."""

    __tablename__ = "message_recipients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    recipient_kind: Mapped[str] = mapped_column(String(40))
    recipient_id: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(254), default="")
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    status_detail: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    batch_key: Mapped[str | None] = mapped_column(String(64))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_number: Mapped[int] = mapped_column(default=0)
    is_sender: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=_now_default())
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    # A recall's delivery: the delivered one whose Telegram messages it deletes.
    origin_id: Mapped[int | None] = mapped_column(BigInteger)
    # A personalised broadcast's placeholder values for this recipient (channels.personalise):
    # only those its content uses, so the dispatcher renders without reloading the recipient.
    # Plain JSON, not JSONB, on PostgreSQL: stored as written, never queried, cheaper to COPY.
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON())

    __table_args__ = (
        Index("ix_message_recipients_claim", "channel", "status", "next_attempt_at"),
        # A message's deliveries in id order, all or one status at a time (its pages, walked in
        # the index alone), and its pending ones (a cancel). One index, not one per use: every
        # index costs the 100,000-row COPY of a broadcast.
        Index("ix_message_recipients_message_id", "message_id", "id", "status"),
        Index("ix_message_recipients_recipient", "recipient_kind", "recipient_id"),
        Index(
            "ix_message_recipients_origin_id",
            "origin_id",
            unique=True,
            postgresql_where=text("origin_id IS NOT NULL"),
            sqlite_where=text("origin_id IS NOT NULL"),
        ),
    )


class MessageCounter(Base):
    """Live count of a message's deliveries in one status.

    Kept by atomic increments whenever deliveries change status, so reading a broadcast's
    progress is a handful of rows instead of a scan of every delivery.
    """

    __tablename__ = "message_counters"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class MessageAttachment(TimestampMixin, Base):
    __tablename__ = "message_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(String(1024))


class MessageUserRead(Base):
    """A read receipt: who read an inbox message, once."""

    __tablename__ = "message_user_reads"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    read_at: Mapped[datetime] = mapped_column(server_default=_now_default())

    __table_args__ = (UniqueConstraint("message_id", "user_id"),)


class IdempotencyKey(TimestampMixin, Base):
    """The first answer to a request carrying an Idempotency-Key, replayed for repeats."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (UniqueConstraint("user_id", "key"),)


class PreferenceSource(enum.StrEnum):
    """Who set a channel preference."""

    PERSON = "person"  # the recipient: an unsubscribe link, STOP by SMS, /stop to the bot
    STAFF = "staff"  # an administrator, through the API, the console or the CLI
    IMPORT = "import"  # a CSV import
    SKEBBY = "skebby"  # pulled from Skebby's SMS blacklist


class RecipientChannelPreference(Base):
    """Whether a recipient accepts a channel, for every message typology (``typology_id`` NULL)
    or for one. No row: accepted. The row of the message's typology wins over the general one."""

    __tablename__ = "recipient_channel_preferences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recipient_kind: Mapped[str] = mapped_column(String(40))
    recipient_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))
    typology_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_typologies.id", ondelete="CASCADE")
    )
    accepted: Mapped[bool] = mapped_column(default=True)
    source: Mapped[str] = mapped_column(String(16), default=PreferenceSource.STAFF)
    # SMS only: whether Skebby's blacklist already reflects this row (pushed or pulled).
    provider_synced: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default())

    __table_args__ = (
        Index(
            "uq_recipient_channel_preferences_typology",
            "recipient_kind",
            "recipient_id",
            "channel",
            "typology_id",
            unique=True,
            postgresql_where=text("typology_id IS NOT NULL"),
            sqlite_where=text("typology_id IS NOT NULL"),
        ),
        Index(
            "uq_recipient_channel_preferences_general",
            "recipient_kind",
            "recipient_id",
            "channel",
            unique=True,
            postgresql_where=text("typology_id IS NULL"),
            sqlite_where=text("typology_id IS NULL"),
        ),
        Index(
            "ix_recipient_channel_preferences_recipient",
            "recipient_kind",
            "recipient_id",
            "channel",
        ),
        Index("ix_recipient_channel_preferences_channel", "channel", "provider_synced"),
    )


# --- python-telegram-bot persistence: one row per key, never a whole-table blob ------------------


class BotUserData(Base):
    __tablename__ = "bot_user_data"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default())


class BotChatData(Base):
    __tablename__ = "bot_chat_data"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default())


class BotSingleton(Base):
    """bot_data and callback_data: one row each, keyed by name."""

    __tablename__ = "bot_singletons"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default())


class BotConversation(Base):
    __tablename__ = "bot_conversations"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)  # JSON of the key tuple
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"state": <json value>}
    updated_at: Mapped[datetime] = mapped_column(server_default=_now_default(), index=True)


# --- several processes on one database ---------------------------------------------------------


class Leader(Base):
    """A leadership held by one process for a short while (the Telegram leader per bot token,
    the scheduler): renewed before ``expires_at``, taken over by another process after it."""

    __tablename__ = "leaders"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    elected_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class TelegramUpdate(Base):
    """A webhook update, stored (once per ``update_id``) before Telegram gets its 200, and
    handled by the Telegram leader in ``update_id`` order."""

    __tablename__ = "telegram_updates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bot: Mapped[str] = mapped_column(String(32))  # which bot token (a hash of it)
    update_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # handling, handled
    holder: Mapped[str | None] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(server_default=_now_default())
    handled_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("bot", "update_id"),
        Index("ix_telegram_updates_bot_status_update_id", "bot", "status", "update_id"),
    )


# --- the audit log ---------------------------------------------------------------------------


class AuditEvent(Base):
    """One thing someone did (``persistence.audit``): written in the action's own transaction,
    never changed afterwards. No foreign keys: the log outlives the users and records it names.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))  # user, api_key, bot, cli
    actor_id: Mapped[int | None] = mapped_column(Integer)  # the user acting (or the key's owner)
    actor_label: Mapped[str] = mapped_column(String(150))  # their username, or "bot"
    key_prefix: Mapped[str | None] = mapped_column(String(16))  # the API key's display prefix
    action: Mapped[str] = mapped_column(String(40))
    subject_kind: Mapped[str] = mapped_column(String(40))
    # ",12,13," so one id is found with LIKE on both databases without a second table.
    subject_ids: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_action", "action", "id"),
        Index("ix_audit_events_actor", "actor_label", "id"),
        Index("ix_audit_events_subject", "subject_kind", "id"),
    )


# --- delivery-status webhooks ------------------------------------------------------------------


class WebhookEndpoint(Base):
    """A user's callback URL and the events it wants (``persistence.webhook_queries``).

    The secret signs every event (HMAC-SHA256), so it is kept as given; it is shown once, when
    the endpoint is created, and never logged or answered again.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The API key that registered it, if one did (informative: the owner is the key's user).
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JsonType, default=list)
    secret: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=_now_default())


class WebhookEventStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEvent(Base):
    """One event for one endpoint: the webhook outbox's row (claimed under a lease)."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the event id (a UUID)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=WebhookEventStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The claim: an endpoint's pending events in due order (the index alone).
        Index("ix_webhook_events_claim", "endpoint_id", "status", "next_attempt_at"),
        Index("ix_webhook_events_endpoint", "endpoint_id", "created_at"),
        Index("ix_webhook_events_lease", "status", "lease_expires_at"),
    )


class WebhookAttempt(Base):
    """One POST of an event: when, what came back (a status code or an error), how long."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int]
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(default=0)
