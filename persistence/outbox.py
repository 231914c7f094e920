"""The outbox's SQL: claiming due deliveries, recording outcomes, live counters, rescue, cancel.

Deliveries are rows of ``message_recipients``. A worker claims due ``pending`` rows by turning them
``sending`` under a lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several processes share the
work), and records each outcome only for rows it still holds. Every status change moves the
message's counters by atomic increments in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from persistence import audit, webhook_queries
from persistence.audit import Actor, AuditAction
from persistence.driver_sql import driver_in_transaction
from persistence.id_filter import id_filters
from persistence.models import (
    DeliveryStatus,
    Message,
    MessageCounter,
    MessageRecipient,
    MessageStatus,
)
from persistence.notify import OUTBOX_CHANNEL, notify
from persistence.webhook_queries import FinalDelivery

MR = MessageRecipient
IN_FLIGHT = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
# A message whose deliveries are not all final yet.
OPEN_MESSAGE_STATUSES = (MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.SENDING)


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    message_id: int
    recipient_kind: str
    recipient_id: int
    address: str
    attempts: int
    batch_key: str | None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeliveryUpdate:
    """The outcome of one claimed delivery, to be written back."""

    id: int
    status: DeliveryStatus
    attempts: int
    detail: str = ""
    last_error: str | None = None
    provider_id: str | None = None
    sent_number: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    address: str | None = None
    batch_key: str | None = None


async def add_to_counters(session: AsyncSession, deltas: Mapping[tuple[int, str], int]) -> None:
    """Atomically add ``deltas`` to the (message, status) counters, creating missing rows."""
    rows = [
        {"message_id": message_id, "status": status, "count": delta}
        for (message_id, status), delta in sorted(deltas.items())  # sorted: no deadlocks
        if delta
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(MessageCounter).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["message_id", "status"],
            set_={"count": MessageCounter.count + statement.excluded.count},
        )
    )


async def read_counters(
    session: AsyncSession, message_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    rows = await session.execute(
        select(MessageCounter.message_id, MessageCounter.status, MessageCounter.count).where(
            MessageCounter.message_id.in_(message_ids)
        )
    )
    result: dict[int, dict[str, int]] = {message_id: {} for message_id in message_ids}
    for message_id, status, count in rows:
        if count:
            result[message_id][status] = int(count)
    return result


async def claim(
    session: AsyncSession,
    *,
    channel: str,
    limit: int,
    now: datetime,
    lease_until: datetime,
    owner: str,
) -> list[ClaimedDelivery]:
    due = (
        select(MR.id)
        .where(
            MR.channel == channel, MR.status == DeliveryStatus.PENDING, MR.next_attempt_at <= now
        )
        .order_by(MR.next_attempt_at, MR.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = (
        await session.execute(
            update(MR)
            .where(MR.id.in_(due.scalar_subquery()))
            .values(
                status=DeliveryStatus.SENDING,
                attempts=MR.attempts + 1,
                lease_owner=owner,
                lease_expires_at=lease_until,
            )
            .returning(
                MR.id,
                MR.message_id,
                MR.recipient_kind,
                MR.recipient_id,
                MR.address,
                MR.attempts,
                MR.batch_key,
                MR.params,
            )
            .execution_options(synchronize_session=False)
        )
    ).all()
    claimed = sorted((ClaimedDelivery(*row) for row in rows), key=lambda d: d.id)
    per_message = Counter(d.message_id for d in claimed)
    if per_message:  # the first claim of a message says it is being delivered
        await session.execute(
            update(Message)
            .where(Message.id.in_(list(per_message)), Message.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SENDING)
            .execution_options(synchronize_session=False)
        )
    deltas: dict[tuple[int, str], int] = {}
    for message_id, count in per_message.items():
        deltas[(message_id, DeliveryStatus.PENDING)] = -count
        deltas[(message_id, DeliveryStatus.SENDING)] = count
    await add_to_counters(session, deltas)
    return claimed


async def extend_leases(
    session: AsyncSession, *, owner: str, ids: Sequence[int], until: datetime
) -> int:
    """A live worker's heartbeat: its deliveries stay its own while it is still working on them
    (waiting out a rate limit or a provider's pause), however long that takes."""
    dialect = session.get_bind().dialect.name
    renewed = 0
    for held in id_filters(MR.id, ids, dialect):
        mine = select(MR.id).where(
            held, MR.status == DeliveryStatus.SENDING, MR.lease_owner == owner
        )
        result = await session.execute(
            update(MR)
            .where(MR.id.in_(_skip_locked(mine, dialect).scalar_subquery()))
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )
        renewed += int(result.rowcount)  # type: ignore[attr-defined]
    return renewed


def _skip_locked(rows: Select[int], dialect: str) -> Select[int]:
    """Leave alone the rows another transaction is writing (a batch recording its outcomes):
    waiting for them gains nothing, and taking row locks in another order can deadlock."""
    return rows.with_for_update(skip_locked=True) if dialect == "postgresql" else rows


async def set_batch_key(session: AsyncSession, ids: Sequence[int], key: str | None) -> None:
    """Persist a batch's provider order key before sending, so a rescue can probe for it."""
    await session.execute(
        update(MR)
        .where(MR.id.in_(ids))
        .values(batch_key=key)
        .execution_options(synchronize_session=False)
    )


async def record(
    session: AsyncSession,
    *,
    owner: str,
    updates: Sequence[DeliveryUpdate],
    now: datetime | None = None,
) -> set[int]:
    """Write outcomes for the rows this worker still holds; return the messages touched.

    Final outcomes become webhook events in the same transaction when an endpoint wants them
    (one small read of the subscriptions per batch; nothing more when there are none)."""
    if not updates:
        return set()
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        owned = await _write_outcomes_postgres(connection, owner, updates)
    else:
        owned = await _write_outcomes(session, owner, updates)
    status_of = {u.id: u.status.value for u in updates}
    deltas: Counter[tuple[int, str]] = Counter()
    for delivery_id, message_id, _ in owned:
        deltas[(message_id, DeliveryStatus.SENDING.value)] -= 1
        deltas[(message_id, status_of[delivery_id])] += 1
    if any(origin is not None for _, _, origin in owned):
        update_of = {u.id: u for u in updates}
        recalled = [(origin, update_of[d]) for d, _, origin in owned if origin is not None]
        deltas.update(await _apply_recalls(session, recalled))
    await add_to_counters(session, deltas)
    if owned:
        await _delivery_events(session, owned, updates, now or datetime.now(UTC))
    return {message_id for _, message_id, _ in owned}


async def _delivery_events(
    session: AsyncSession,
    owned: Sequence[tuple[int, int, int | None]],
    updates: Sequence[DeliveryUpdate],
    now: datetime,
) -> None:
    subs = await webhook_queries.subscriptions(session)
    if not subs:
        return
    update_of = {u.id: u for u in updates}
    finals = [
        FinalDelivery(
            d, update_of[d].status.value, update_of[d].detail, update_of[d].attempts, origin
        )
        for d, _, origin in owned
        if update_of[d].status.value in webhook_queries.DELIVERY_EVENTS
    ]
    await webhook_queries.add_delivery_events(session, subs, finals, now)


async def _apply_recalls(
    session: AsyncSession, outcomes: Sequence[tuple[int, DeliveryUpdate]]
) -> Counter[tuple[int, str]]:
    """A recall's outcomes, written on the delivered rows they act on: ``recalled`` when the
    Telegram messages are gone, else the reason Telegram refused (the row stays delivered).
    Returns the counter moves of the recalled messages."""
    deltas: Counter[tuple[int, str]] = Counter()
    gone = [(origin, u.detail) for origin, u in outcomes if u.status is DeliveryStatus.SUCCESS]
    refused = [
        (origin, u.detail)
        for origin, u in outcomes
        if u.status in (DeliveryStatus.FAILED, DeliveryStatus.INVALID, DeliveryStatus.BLOCKED)
    ]
    for origin, detail in gone:
        rows = await session.execute(
            update(MR)
            .where(MR.id == origin, MR.status == DeliveryStatus.SUCCESS)
            .values(status=DeliveryStatus.RECALLED, status_detail=f"recalled: {detail}")
            .returning(MR.message_id)
            .execution_options(synchronize_session=False)
        )
        for (message_id,) in rows:
            deltas[(message_id, DeliveryStatus.SUCCESS.value)] -= 1
            deltas[(message_id, DeliveryStatus.RECALLED.value)] += 1
    for origin, detail in refused:
        await session.execute(
            update(MR)
            .where(MR.id == origin, MR.status == DeliveryStatus.SUCCESS)
            .values(status_detail=f"not recalled: {detail}")
            .execution_options(synchronize_session=False)
        )
    return deltas


# One statement for the whole batch: the ORM's executemany costs ~50 µs of Python per row and a
# statement per row on the server, which showed at a thousand deliveries a second.
_RECORD_POSTGRES = """
UPDATE message_recipients AS m SET
    status = v.status, attempts = v.attempts, status_detail = v.detail,
    last_error = v.last_error, sent_number = v.sent_number,
    next_attempt_at = v.next_attempt_at, batch_key = v.batch_key,
    lease_owner = NULL, lease_expires_at = NULL,
    provider_id = COALESCE(v.provider_id, m.provider_id),
    sent_at = COALESCE(v.sent_at, m.sent_at),
    address = COALESCE(v.address, m.address)
FROM unnest(
    $1::bigint[], $2::varchar[], $3::int[], $4::text[], $5::text[], $6::int[],
    $7::timestamptz[], $8::varchar[], $9::varchar[], $10::timestamptz[], $11::varchar[]
) AS v(
    id, status, attempts, detail, last_error, sent_number,
    next_attempt_at, batch_key, provider_id, sent_at, address
)
WHERE m.id = v.id AND m.status = 'sending' AND m.lease_owner = $12
RETURNING m.id, m.message_id, m.origin_id
"""


async def _write_outcomes_postgres(
    connection: AsyncConnection, owner: str, updates: Sequence[DeliveryUpdate]
) -> list[tuple[int, int, int | None]]:
    driver = await driver_in_transaction(connection)  # atomic with the counters written next
    rows = await driver.fetch(
        _RECORD_POSTGRES,
        [u.id for u in updates],
        [u.status.value for u in updates],
        [u.attempts for u in updates],
        [u.detail for u in updates],
        [u.last_error for u in updates],
        [u.sent_number for u in updates],
        [u.next_attempt_at for u in updates],
        [u.batch_key for u in updates],
        [u.provider_id for u in updates],
        [u.sent_at for u in updates],
        [u.address for u in updates],
        owner,
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def _write_outcomes(
    session: AsyncSession, owner: str, updates: Sequence[DeliveryUpdate]
) -> list[tuple[int, int, int | None]]:
    by_id = {u.id: u for u in updates}
    held = select(MR.id, MR.message_id, MR.origin_id).where(
        MR.id.in_(by_id), MR.status == DeliveryStatus.SENDING, MR.lease_owner == owner
    )
    owned = [(d_id, m_id, origin) for d_id, m_id, origin in await session.execute(held)]
    params: list[dict[str, Any]] = []
    for delivery_id, _, _ in owned:
        u = by_id[delivery_id]
        row: dict[str, Any] = {
            "id": u.id,
            "status": u.status.value,
            "attempts": u.attempts,
            "status_detail": u.detail,
            "last_error": u.last_error,
            "sent_number": u.sent_number,
            "next_attempt_at": u.next_attempt_at,
            "lease_owner": None,
            "lease_expires_at": None,
            "batch_key": u.batch_key,
        }
        if u.provider_id is not None:
            row["provider_id"] = u.provider_id
        if u.sent_at is not None:
            row["sent_at"] = u.sent_at
        if u.address is not None:
            row["address"] = u.address
        params.append(row)
    # Rows differ in which optional columns they set; group them so each executemany is uniform.
    for columns in {tuple(sorted(p)) for p in params}:
        group = [p for p in params if tuple(sorted(p)) == columns]
        await session.execute(update(MR), group)
    return owned


async def finish_messages(session: AsyncSession, message_ids: Iterable[int], now: datetime) -> None:
    """Mark messages done once none of their deliveries is pending or in flight; a broadcast
    whose last message finished is a ``broadcast.done`` webhook event for whoever wants it."""
    ids = list(message_ids)
    if not ids:
        return
    busy = exists().where(
        MessageCounter.message_id == Message.id,
        MessageCounter.status.in_(IN_FLIGHT),
        MessageCounter.count > 0,
    )
    finished = (
        await session.execute(
            update(Message)
            .where(
                Message.id.in_(ids),
                Message.status.in_(OPEN_MESSAGE_STATUSES),
                ~busy,
            )
            .values(status=MessageStatus.DONE, finished_at=now)
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if finished:
        subs = await webhook_queries.subscriptions(session)
        if subs:
            done = [message_id for (message_id,) in finished]
            await webhook_queries.add_broadcast_done_events(session, subs, done, now)


async def release(session: AsyncSession, *, owner: str, ids: Sequence[int], now: datetime) -> None:
    """Give claimed-but-unsent deliveries back (clean shutdown), without counting an attempt."""
    if not ids:
        return
    rows = (
        await session.execute(
            update(MR)
            .where(MR.id.in_(ids), MR.status == DeliveryStatus.SENDING, MR.lease_owner == owner)
            .values(
                status=DeliveryStatus.PENDING,
                attempts=MR.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=now,
            )
            .returning(MR.message_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await _move(session, [m for (m,) in rows], DeliveryStatus.SENDING, DeliveryStatus.PENDING)


async def _move(
    session: AsyncSession,
    message_ids: Sequence[int],
    source: DeliveryStatus,
    target: DeliveryStatus,
) -> None:
    deltas: Counter[tuple[int, str]] = Counter()
    for message_id in message_ids:
        deltas[(message_id, source.value)] -= 1
        deltas[(message_id, target.value)] += 1
    await add_to_counters(session, deltas)


async def rescue_expired(
    session: AsyncSession,
    now: datetime,
    *,
    keep_owner: str | None = None,
    keep_ids: Sequence[int] = (),
) -> int:
    """Deliveries whose worker died (lease expired while ``sending``) go back to ``pending``.

    ``keep_ids`` of ``keep_owner`` stay: the calling worker is alive and still holds their
    outcomes (it could not renew their leases while the database was away). Their
    ``batch_key`` stays, so a batching channel first asks its provider whether that batch was
    accepted before sending it again.
    """
    expired = select(MR.id).where(MR.status == DeliveryStatus.SENDING, MR.lease_expires_at < now)
    if keep_owner is not None and keep_ids:
        mine = MR.lease_owner == keep_owner
        expired = expired.where(~(mine & MR.id.in_(list(keep_ids))))
    dialect = session.get_bind().dialect.name
    rows = (
        await session.execute(
            update(MR)
            .where(MR.id.in_(_skip_locked(expired, dialect).scalar_subquery()))
            .values(
                status=DeliveryStatus.PENDING,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=now,
            )
            .returning(MR.message_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await _move(session, [m for (m,) in rows], DeliveryStatus.SENDING, DeliveryStatus.PENDING)
    return len(rows)


async def cancel_message(
    session: AsyncSession, message_id: int, now: datetime, actor: Actor | None = None
) -> int:
    """Cancel every delivery not yet handed to a provider; return how many were cancelled.

    With an ``actor`` (always, when a person asks), the audit log records who cancelled it.
    """
    await session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.status.in_(OPEN_MESSAGE_STATUSES),
        )
        .values(status=MessageStatus.CANCELLED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    stop = (
        update(MR)
        .where(MR.message_id == message_id, MR.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, status_detail="cancelled before sending")
        .execution_options(synchronize_session=False)
    )
    subs = await webhook_queries.subscriptions(session)
    if subs.owners_wanting(["delivery.cancelled"]):  # their ids become events
        ids = [d for (d,) in await session.execute(stop.returning(MR.id))]
        cancelled = len(ids)
        await webhook_queries.add_cancelled_events(session, subs, message_id, ids, now)
    else:
        result = await session.execute(stop)
        cancelled = int(result.rowcount)  # type: ignore[attr-defined]
    await add_to_counters(
        session,
        {
            (message_id, DeliveryStatus.PENDING.value): -cancelled,
            (message_id, DeliveryStatus.CANCELLED.value): cancelled,
        },
    )
    if actor is not None:
        detail = {"cancelled_deliveries": cancelled}
        await audit.record(
            session, actor, AuditAction.BROADCAST_CANCELLED, "message", [message_id], detail
        )
    return cancelled


async def cancelled_among(session: AsyncSession, message_ids: Iterable[int]) -> set[int]:
    ids = list(message_ids)
    if not ids:
        return set()
    rows = await session.execute(
        select(Message.id).where(Message.id.in_(ids), Message.status == MessageStatus.CANCELLED)
    )
    return {message_id for (message_id,) in rows}


async def start_due_scheduled(session: AsyncSession, now: datetime) -> list[int]:
    """Scheduled messages whose time has come are marked queued (their rows become claimable
    at ``send_at`` by themselves, so a restart can neither lose nor double them)."""
    rows = await session.execute(
        update(Message)
        .where(Message.status == MessageStatus.SCHEDULED, Message.send_at <= now)
        .values(status=MessageStatus.QUEUED)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return [message_id for (message_id,) in rows]


async def announce_due(session: AsyncSession, message_ids: Sequence[int]) -> None:
    """Tell every process's dispatcher (PostgreSQL NOTIFY, at commit) that these messages'
    channels have deliveries due."""
    if not message_ids:
        return
    channels = await session.execute(
        select(Message.channel).where(Message.id.in_(list(message_ids))).distinct()
    )
    for (channel,) in channels:
        await notify(session, OUTBOX_CHANNEL, channel)


async def queue_depth(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(MR.channel, func.count()).where(MR.status.in_(IN_FLIGHT)).group_by(MR.channel)
    )
    return {channel: int(count) for channel, count in rows}
