"""Broadcasts as one object: the messages (one per channel) that share a ``broadcast_id``.

A broadcast has no table of its own: its channels' messages carry what it is (sender, time,
typology, text), and its status is derived from theirs. A recall's own messages (see
``persistence.recall``) belong to the broadcast too, apart from its channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import (
    NotFoundError,
    Page,
    PageRequest,
    fetch_page,
    message_visible,
    scoped,
)
from persistence.message_queries import MessageView, broadcast_messages
from persistence.models import Direction, Message, MessageStatus, User
from persistence.outbox import read_counters
from persistence.recall import RECALL_EXTRA_KEY, is_recall
from persistence.recipient_kinds import RecipientKindRegistry

# A broadcast is as far along as its least advanced channel: one channel still sending makes it
# sending; it is done when every channel is final, cancelled only when every channel was.
_RANK = {
    MessageStatus.CANCELLED.value: 0,
    MessageStatus.DONE.value: 1,
    MessageStatus.SCHEDULED.value: 2,
    MessageStatus.QUEUED.value: 3,
    MessageStatus.SENDING.value: 4,
}
_STATUS_OF_RANK = {rank: status for status, rank in _RANK.items()}


@dataclass(frozen=True)
class BroadcastFilter:
    status: str | None = None
    channel: str | None = None
    typology_id: int | None = None
    sender_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class BroadcastView:
    broadcast_id: str
    channels: list[MessageView]  # one message per channel, in the order they were written
    recalls: list[MessageView]  # the recall's deletions, once one was asked for

    @property
    def first(self) -> Message:
        return self.channels[0].message

    @property
    def status(self) -> str:
        return overall_status([v.message.status for v in self.channels])

    @property
    def counters(self) -> dict[str, int]:
        """Deliveries per status, summed over the channels."""
        total: dict[str, int] = {}
        for view in self.channels:
            for status, count in view.counters.items():
                total[status] = total.get(status, 0) + count
        return total


def overall_status(statuses: list[str]) -> str:
    return _STATUS_OF_RANK[max((_RANK.get(s, 0) for s in statuses), default=0)]


def _split(broadcast_id: str, views: list[MessageView]) -> BroadcastView:
    return BroadcastView(
        broadcast_id,
        [v for v in views if not is_recall(v.message)],
        [v for v in views if is_recall(v.message)],
    )


async def get_broadcast(
    session: AsyncSession, kinds: RecipientKindRegistry, user: User, broadcast_id: str
) -> BroadcastView:
    """One broadcast as ``user`` may see it (``NotFoundError`` otherwise)."""
    views = await broadcast_messages(session, kinds, user, broadcast_id)
    sent = [v for v in views if v.message.direction == Direction.SENT]
    if not sent or all(is_recall(v.message) for v in sent):
        raise NotFoundError(f"broadcast {broadcast_id}")
    return _split(broadcast_id, sent)


def _not_recall() -> ColumnElement[bool]:
    # A JSON key test both databases understand: the recall marker is never null when set.
    marker: ColumnElement[bool] = Message.extra[RECALL_EXTRA_KEY].as_integer().is_(None)
    return marker


async def list_broadcasts(
    session: AsyncSession,
    kinds: RecipientKindRegistry,
    user: User,
    filters: BroadcastFilter,
    page: PageRequest,
) -> Page[BroadcastView]:
    """Broadcasts ``user`` may see, newest first; each with its channels' live counters."""
    rank = func.max(case(*((Message.status == s, r) for s, r in _RANK.items()), else_=0)).label(
        "rank"
    )
    first_id = func.min(Message.id).label("first_id")
    statement = scoped(
        select(Message.broadcast_id, first_id).where(
            Message.direction == Direction.SENT, _not_recall(), Message.is_test.is_(False)
        ),
        message_visible(kinds, user),
    )
    if filters.channel is not None:
        statement = statement.where(Message.channel == filters.channel)
    if filters.typology_id is not None:
        statement = statement.where(Message.typology_id == filters.typology_id)
    if filters.sender_id is not None:
        statement = statement.where(Message.sender_id == filters.sender_id)
    if filters.created_from is not None:
        statement = statement.where(Message.created_at >= filters.created_from)
    if filters.created_to is not None:
        statement = statement.where(Message.created_at < filters.created_to)
    statement = statement.group_by(Message.broadcast_id)
    if filters.status is not None:
        statement = statement.having(rank == _RANK[filters.status])
    rows = await fetch_page(session, statement.order_by(first_id.desc()), page)
    ids = [broadcast_id for broadcast_id, _ in rows.items]
    views = await _views_of(session, ids)
    items = [_split(b, views[b]) for b in ids if views.get(b)]
    return Page(items, rows.limit, rows.offset, rows.has_more)


async def _views_of(
    session: AsyncSession, broadcast_ids: list[str]
) -> dict[str, list[MessageView]]:
    if not broadcast_ids:
        return {}
    messages = list(
        (
            await session.execute(
                select(Message)
                .where(Message.broadcast_id.in_(broadcast_ids), Message.direction == Direction.SENT)
                .order_by(Message.id)
            )
        ).scalars()
    )
    counters = await read_counters(session, [m.id for m in messages])
    grouped: dict[str, list[MessageView]] = {}
    for message in messages:
        grouped.setdefault(message.broadcast_id, []).append(
            MessageView(message, counters[message.id])
        )
    return grouped
