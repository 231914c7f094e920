"""The audit log: who did what to which records, when and from where (``audit_events``).

:func:`record` is called in the transaction of the action it describes, so an action and its
row commit (or roll back) together. Rows are only ever inserted; nothing here updates or deletes
one. A row names records by id and carries small facts (counts, field names, a key's display
prefix), never a secret: :func:`record` refuses a detail key that looks like one.
"""

from __future__ import annotations

import enum
import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import Page, PageRequest, fetch_page
from persistence.models import AuditEvent, User

USER_AGENT_CHARS = 200
REMOTE_ADDR_CHARS = 64
# Detail keys are written by our code, not by callers; this guard catches a careless one.
_SECRET_WORDS = ("password", "secret", "token", "hash", "api_key")


class ActorKind(enum.StrEnum):
    USER = "user"  # signed in to the console
    API_KEY = "api_key"  # a request to the admin API
    BOT = "bot"  # the Telegram bot, on behalf of the person writing to it
    CLI = "cli"  # a ``herald`` command
    PERSON = "person"  # a recipient: an unsubscribe link in an email, STOP in an SMS
    SYSTEM = "system"  # Herald on a provider's word (Skebby's blacklist)


class AuditAction(enum.StrEnum):
    BROADCAST_SENT = "broadcast.sent"
    BROADCAST_CANCELLED = "broadcast.cancelled"
    BROADCAST_RECALLED = "broadcast.recalled"
    TEST_SENT = "broadcast.test_sent"  # "send me a test", to the sender's own addresses
    TEMPLATE_CREATED = "template.created"
    TEMPLATE_UPDATED = "template.updated"
    TEMPLATE_DELETED = "template.deleted"
    TELEGRAM_LINKED = "user.telegram_linked"
    USER_EMAIL_SET = "user.email_set"
    RECIPIENT_CREATED = "recipient.created"
    RECIPIENT_UPDATED = "recipient.updated"
    RECIPIENT_DELETED = "recipient.deleted"
    RECIPIENTS_IMPORTED = "recipients.imported"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    USER_CREATED = "user.created"
    PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - the name of an event
    INVOICES_MARKED = "invoices.marked"
    # What a recipient receives changed: Telegram /stop, /start, sharing their number, an
    # unsubscribe link, STOP by SMS, Skebby's blacklist, or staff editing their preferences.
    PREFERENCES_CHANGED = "preferences.changed"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where. ``user_id`` is the user behind a console session, an API key
    or ``herald --as``; ``label`` is how the log names the actor (a username, or ``bot``)."""

    kind: ActorKind
    label: str
    user_id: int | None = None
    key_prefix: str | None = None
    remote_addr: str | None = None
    user_agent: str | None = None

    @classmethod
    def of_user(
        cls,
        user: User,
        kind: ActorKind = ActorKind.USER,
        *,
        key_prefix: str | None = None,
        remote_addr: str | None = None,
        user_agent: str | None = None,
    ) -> Actor:
        return cls(kind, user.username, user.id, key_prefix, remote_addr, user_agent)

    @classmethod
    def bot(cls) -> Actor:
        return cls(ActorKind.BOT, "bot")

    @classmethod
    def skebby(cls) -> Actor:
        return cls(ActorKind.SYSTEM, "skebby")

    @classmethod
    def person(
        cls,
        kind: str,
        rid: int,
        *,
        remote_addr: str | None = None,
        user_agent: str | None = None,
    ) -> Actor:
        """The recipient themselves (``customer 12``), acting from outside any login."""
        return cls(
            ActorKind.PERSON,
            f"{kind.replace('_', ' ')} {rid}",
            remote_addr=remote_addr,
            user_agent=user_agent,
        )

    @classmethod
    def cli(cls, user: User | None) -> Actor:
        """A ``herald`` command acting as ``user`` (``--as``), or, for a command without that
        option, as the operating system's user who ran it."""
        agent = f"herald cli (os user {os_user()})"
        if user is None:
            return cls(ActorKind.CLI, os_user(), user_agent=agent)
        return cls.of_user(user, ActorKind.CLI, user_agent=agent)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def joined_ids(ids: Iterable[int | str]) -> str:
    """``[12, 13]`` → ``",12,13,"``: each id between commas, so ``LIKE '%,12,%'`` finds it."""
    text = ",".join(str(i) for i in ids)
    return f",{text}," if text else ""


def split_ids(stored: str) -> list[str]:
    return [part for part in stored.split(",") if part]


def _check_detail(detail: Mapping[str, Any]) -> None:
    for key, value in detail.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(f"audit detail {key!r} looks like a secret: leave it out")
        if isinstance(value, Mapping):
            _check_detail(value)


async def record(
    session: AsyncSession,
    actor: Actor,
    action: AuditAction,
    subject_kind: str,
    subject_ids: Iterable[int | str] = (),
    detail: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Add one event to ``session``'s transaction (it commits with the action)."""
    facts = dict(detail or {})
    _check_detail(facts)
    session.add(
        AuditEvent(
            occurred_at=now or datetime.now(UTC),
            actor_kind=actor.kind.value,
            actor_id=actor.user_id,
            actor_label=actor.label[:150],
            key_prefix=actor.key_prefix,
            action=action.value,
            subject_kind=subject_kind,
            subject_ids=joined_ids(subject_ids),
            detail=facts,
            remote_addr=(actor.remote_addr or None) and actor.remote_addr[:REMOTE_ADDR_CHARS],
            user_agent=(actor.user_agent or None) and actor.user_agent[:USER_AGENT_CHARS],
        )
    )
    await session.flush()


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None  # a username (or "bot"), or an API key's prefix
    actor_kind: str | None = None
    subject_kind: str | None = None
    subject_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _where(filters: AuditFilter) -> list[ColumnElement[bool]]:
    e = AuditEvent
    clauses: list[ColumnElement[bool]] = []
    if filters.action is not None:
        clauses.append(e.action == filters.action)
    if filters.actor is not None:
        clauses.append(or_(e.actor_label == filters.actor, e.key_prefix == filters.actor))
    if filters.actor_kind is not None:
        clauses.append(e.actor_kind == filters.actor_kind)
    if filters.subject_kind is not None:
        clauses.append(e.subject_kind == filters.subject_kind)
    if filters.subject_id is not None:
        wanted = filters.subject_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(e.subject_ids.like(f"%,{wanted},%", escape="\\"))
    if filters.since is not None:
        clauses.append(e.occurred_at >= filters.since)
    if filters.until is not None:
        clauses.append(e.occurred_at < filters.until)
    return clauses


async def list_events(
    session: AsyncSession, filters: AuditFilter, page: PageRequest
) -> Page[AuditEvent]:
    """Events matching ``filters``, newest first."""
    statement = select(AuditEvent).where(*_where(filters)).order_by(AuditEvent.id.desc())
    rows = await fetch_page(session, statement, page)
    return Page([row[0] for row in rows.items], rows.limit, rows.offset, rows.has_more)
