"""Recalling a broadcast: what is still pending is cancelled, and every Telegram message already
delivered is deleted from its chat, through the outbox like any delivery.

A recall is a message of its own on the telegram channel (``extra["recall_of"]`` names the
message it recalls), so its deletions are claimed, retried, rate-limited under the shared
Telegram budget and counted like sends. Each of its deliveries names the delivered one it acts
on (``origin_id``, unique: a delivery is recalled at most once) and carries the chat and the
Telegram message ids to delete as its address. When a deletion's outcome is recorded the
delivered row says ``recalled``, or why Telegram refused (``outbox.record``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import BigInteger, ColumnElement, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from persistence import audit
from persistence.audit import Actor, AuditAction
from persistence.common_queries import ConflictError
from persistence.enqueue import (
    NewMessage,
    announce,
    insert_message,
    mark_done,
    set_initial_counters,
)
from persistence.models import (
    DeliveryStatus,
    Direction,
    Message,
    MessageRecipient,
    MessageStatus,
    User,
    UTCDateTime,
)
from persistence.outbox import add_to_counters

MR = MessageRecipient
RECALL_EXTRA_KEY = "recall_of"
# Between the chat id and the Telegram message ids in a recall delivery's address.
ADDRESS_SEPARATOR = ":"
# How long after a recall deliveries that were in flight are still looked for: far longer than a
# delivery can stay in flight (its lease) before it is final.
LATE_DELIVERY_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class RecallStarted:
    cancelled: int  # deliveries that were still pending, now cancelled
    to_delete: int  # delivered Telegram messages whose deletion is queued
    recall_message_ids: list[int]
    in_flight: int = 0  # Telegram sends under way: deleted once delivered


def is_recall(message: Message) -> bool:
    return bool((message.extra or {}).get(RECALL_EXTRA_KEY))


def recall_address(chat_id: str, provider_ids: str) -> str:
    return f"{chat_id}{ADDRESS_SEPARATOR}{provider_ids}"


def parse_recall_address(address: str) -> tuple[int, list[int]]:
    """The chat and the message ids a recall delivery deletes (ValueError when malformed)."""
    chat, _, ids = address.partition(ADDRESS_SEPARATOR)
    return int(chat), [int(i) for i in ids.split(",") if i]


def _recallable(message_id: int) -> list[ColumnElement[bool]]:
    """Delivered rows of ``message_id`` with Telegram message ids and no recall yet."""
    recall = aliased(MR)
    return [
        MR.message_id == message_id,
        MR.status == DeliveryStatus.SUCCESS,
        MR.provider_id.is_not(None),
        ~select(recall.id).where(recall.origin_id == MR.id).exists(),
    ]


async def _count_recallable(session: AsyncSession, message_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(MR).where(*_recallable(message_id))
    )
    return int(count or 0)


async def _count_in_flight(session: AsyncSession, message_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(MR)
        .where(MR.message_id == message_id, MR.status == DeliveryStatus.SENDING)
    )
    return int(count or 0)


async def _insert_recall_deliveries(
    session: AsyncSession, message_id: int, recall_id: int, now: datetime
) -> int:
    """One deletion per delivered row not yet recalled, written by the database itself
    (INSERT ... SELECT); how many."""
    columns = (
        "message_id",
        "channel",
        "recipient_kind",
        "recipient_id",
        "address",
        "status",
        "status_detail",
        "next_attempt_at",
        "created_at",
        "origin_id",
    )
    rows = select(
        literal(recall_id, BigInteger),
        literal("telegram"),
        MR.recipient_kind,
        MR.recipient_id,
        MR.address + literal(ADDRESS_SEPARATOR) + MR.provider_id,
        literal(DeliveryStatus.PENDING.value),
        literal(""),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
        MR.id,
    ).where(*_recallable(message_id))
    result = await session.execute(insert(MR).from_select(columns, rows))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def start_recall(
    session: AsyncSession,
    messages: Sequence[Message],
    user: User,
    now: datetime,
    actor: Actor,
    *,
    cancelled: int,
) -> RecallStarted:
    """Queue the deletion of every Telegram message delivered for a broadcast whose pending
    deliveries the caller has just cancelled (``cancelled`` of them: the dispatcher's cancel
    also stops what this process has claimed). Sends still in flight are deleted once they are
    delivered (``recall_late_deliveries``). ``ConflictError`` when there was nothing to
    cancel, nothing in flight and nothing left to delete."""
    sent = [m for m in messages if m.direction == Direction.SENT and not is_recall(m)]
    recall_ids: list[int] = []
    to_delete = in_flight = 0
    for message in sent:
        if message.channel != "telegram":
            continue
        count = await _count_recallable(session, message.id)
        flying = await _count_in_flight(session, message.id)
        if not count and not flying:
            continue
        recall_id = await insert_message(
            session,
            NewMessage(
                broadcast_id=message.broadcast_id,
                channel="telegram",
                subject="",
                body="",
                body_html=None,
                typology_id=message.typology_id,
                extra={RECALL_EXTRA_KEY: message.id},
                cost_per_unit=Decimal(0),
                # The broadcast's own sender: a recall stays part of what its owner sees (the
                # audit log names who recalled it).
                sender_id=message.sender_id or user.id,
                sender_name=message.sender_name or user.username,
                send_at=None,
                # Nothing to delete yet (all in flight): done until late deletions join it.
                status=MessageStatus.QUEUED if count else MessageStatus.DONE,
                total=count,
                created_at=now,
            ),
        )
        if count:
            await _insert_recall_deliveries(session, message.id, recall_id, now)
            await set_initial_counters(session, recall_id, {DeliveryStatus.PENDING.value: count})
        else:
            await mark_done(session, recall_id, now)
        recall_ids.append(recall_id)
        to_delete += count
        in_flight += flying
    if to_delete:
        await announce(session, "telegram")
    if not cancelled and not to_delete and not in_flight:
        raise ConflictError("nothing to recall: no delivery is pending or delivered on Telegram")
    await audit.record(
        session,
        actor,
        AuditAction.BROADCAST_RECALLED,
        "message",
        [m.id for m in sent],
        {
            "broadcast_id": sent[0].broadcast_id if sent else "",
            "cancelled_deliveries": cancelled,
            "telegram_messages_to_delete": to_delete,
            "telegram_sends_in_flight": in_flight,
        },
    )
    return RecallStarted(cancelled, to_delete, recall_ids, in_flight)


async def recall_late_deliveries(
    session: AsyncSession, now: datetime, *, window: timedelta = LATE_DELIVERY_WINDOW
) -> int:
    """Deliveries that were in flight when their broadcast was recalled (claimed by a worker,
    perhaps in another process) and were delivered since: their deletions join the recall,
    which is open again until they are done. The number queued."""
    recent = await session.execute(
        select(Message.id, Message.extra).where(
            Message.channel == "telegram",
            Message.direction == Direction.SENT,
            Message.created_at >= now - window,
        )
    )
    queued = 0
    for recall_id, extra in recent.all():
        origin = (extra or {}).get(RECALL_EXTRA_KEY)
        if not origin:
            continue
        count = await _insert_recall_deliveries(session, int(origin), recall_id, now)
        if not count:
            continue
        await add_to_counters(session, {(recall_id, DeliveryStatus.PENDING.value): count})
        await session.execute(
            update(Message)
            .where(Message.id == recall_id)
            .values(total=Message.total + count, status=MessageStatus.QUEUED, finished_at=None)
            .execution_options(synchronize_session=False)
        )
        queued += count
    if queued:
        await announce(session, "telegram")
    return queued
