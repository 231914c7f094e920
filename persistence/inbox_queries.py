"""The inbox: a recipient's thread (what we sent on every channel, what they wrote), read
receipts, and the list of threads with unread counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, and_, cast, exists, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import (
    NotFoundError,
    Page,
    PageRequest,
    fetch_page,
    owns_recipient,
)
from persistence.message_queries import visible_message
from persistence.models import Direction, Message, MessageRecipient, MessageUserRead, User
from persistence.recipient_kinds import RecipientKindRegistry

MR = MessageRecipient


@dataclass(frozen=True)
class ThreadEntry:
    message: Message
    delivery: MessageRecipient
    read_by_me: bool


@dataclass(frozen=True)
class Thread:
    entries: Page[ThreadEntry]
    unread: int


@dataclass(frozen=True)
class ThreadSummary:
    kind: str
    recipient_id: int
    name: str
    received: int
    unread: int
    last_received_at: datetime


def _read_by(user: User) -> Any:
    return exists().where(
        MessageUserRead.message_id == Message.id, MessageUserRead.user_id == user.id
    )


async def require_recipient(
    session: AsyncSession, kinds: RecipientKindRegistry, user: User, kind_name: str, rid: int
) -> Any:
    kind = kinds.get(kind_name)
    record = (
        await session.execute(select(kind.model).where(kind.model.id == rid, kind.visible_to(user)))
    ).scalar()
    if record is None:
        raise NotFoundError(f"{kind_name} {rid}")
    return record


async def thread(
    session: AsyncSession,
    kinds: RecipientKindRegistry,
    user: User,
    kind_name: str,
    rid: int,
    page: PageRequest,
) -> Thread:
    """Newest first. A user who is not a superuser sees only the broadcasts they sent."""
    await require_recipient(session, kinds, user, kind_name, rid)
    statement = (
        select(Message, MR, _read_by(user))
        .join(Message, Message.id == MR.message_id)
        .where(MR.recipient_kind == kind_name, MR.recipient_id == rid)
    )
    if not user.is_superuser:
        statement = statement.where(
            or_(Message.sender_id == user.id, Message.direction == Direction.RECEIVED)
        )
    statement = statement.order_by(Message.created_at.desc(), MR.id.desc())
    rows = await fetch_page(session, statement, page)
    entries = [ThreadEntry(m, d, bool(read)) for m, d, read in rows.items]
    unread = await session.scalar(
        select(func.count())
        .select_from(MR)
        .join(Message, Message.id == MR.message_id)
        .where(
            MR.recipient_kind == kind_name,
            MR.recipient_id == rid,
            MR.is_sender.is_(True),
            ~_read_by(user),
        )
    )
    return Thread(Page(entries, rows.limit, rows.offset, rows.has_more), int(unread or 0))


async def mark_read(
    session: AsyncSession,
    kinds: RecipientKindRegistry,
    user: User,
    message_id: int,
    now: datetime,
) -> datetime:
    """Record the caller's read receipt once; answer when they first read it."""
    await visible_message(session, kinds, user, message_id)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(MessageUserRead)
        .values(message_id=message_id, user_id=user.id, read_at=now)
        .on_conflict_do_nothing(index_elements=["message_id", "user_id"])
    )
    read_at = await session.scalar(
        select(MessageUserRead.read_at).where(
            MessageUserRead.message_id == message_id, MessageUserRead.user_id == user.id
        )
    )
    assert read_at is not None
    return read_at


async def threads(
    session: AsyncSession,
    kinds: RecipientKindRegistry,
    user: User,
    page: PageRequest,
    *,
    unread_only: bool = False,
) -> Page[ThreadSummary]:
    """Every recipient who wrote in, most recent first, with how many messages the caller has
    not read yet."""
    unread_expr = func.sum(cast(~_read_by(user), Integer))
    statement = (
        select(
            MR.recipient_kind,
            MR.recipient_id,
            func.count().label("received"),
            unread_expr.label("unread"),
            func.max(Message.created_at).label("last"),
        )
        .join(Message, Message.id == MR.message_id)
        .where(MR.is_sender.is_(True))
        .group_by(MR.recipient_kind, MR.recipient_id)
        .order_by(func.max(Message.created_at).desc(), MR.recipient_kind, MR.recipient_id)
    )
    if not user.is_superuser:
        statement = statement.where(owns_recipient(kinds, user, MR.recipient_kind, MR.recipient_id))
    if unread_only:
        statement = statement.having(unread_expr > 0)
    rows = await fetch_page(session, statement, page)
    names = await recipient_names(session, kinds, [(k, i) for k, i, *_ in rows.items])
    summaries = [
        ThreadSummary(
            kind, rid, names.get((kind, rid), ""), int(received), int(unread or 0), _utc(last)
        )
        for kind, rid, received, unread, last in rows.items
    ]
    return Page(summaries, rows.limit, rows.offset, rows.has_more)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite aggregates lose the column type
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def recipient_names(
    session: AsyncSession, kinds: RecipientKindRegistry, refs: list[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    names: dict[tuple[str, int], str] = {}
    for kind in kinds:
        ids = [rid for name, rid in refs if name == kind.name]
        if ids:
            rows = await session.execute(
                select(kind.model.id, kind.model.name).where(and_(kind.model.id.in_(ids)))
            )
            names.update({(kind.name, rid): name for rid, name in rows})
    return names
