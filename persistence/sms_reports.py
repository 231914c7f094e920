"""SQL for SMS delivery reports: which ``unknown`` deliveries are due for a look, per provider
order, and settling or rescheduling them with the message counters moved in the same transaction.

The next look is ``next_attempt_at`` (unused by ``unknown`` rows otherwise); ``NULL`` means no
more looks. Knows nothing about Skebby: callers pass statuses and texts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import webhook_queries
from persistence.models import DeliveryStatus, MessageRecipient
from persistence.outbox import add_to_counters
from persistence.webhook_queries import FinalDelivery

MR = MessageRecipient
_CHUNK = 5000  # stays under every driver's bound-parameter limit


@dataclass(frozen=True)
class AwaitingReport:
    id: int
    message_id: int
    provider_id: str
    address: str
    sent_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Settle:
    """Move one delivery out of ``unknown``."""

    id: int
    status: DeliveryStatus
    detail: str
    last_error: str | None = None


def _due(channel: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        MR.channel == channel,
        MR.status == DeliveryStatus.UNKNOWN,
        MR.next_attempt_at <= now,
        MR.provider_id.is_not(None),
    )


async def due_orders(
    session: AsyncSession, *, channel: str, now: datetime, limit: int
) -> list[str]:
    """Provider orders with deliveries awaiting a report that are due for a look, oldest first."""
    rows = await session.execute(
        select(MR.provider_id)
        .where(_due(channel, now))
        .group_by(MR.provider_id)
        .order_by(func.min(MR.next_attempt_at), MR.provider_id)
        .limit(limit)
    )
    return [str(order) for (order,) in rows]


async def awaiting(
    session: AsyncSession, *, channel: str, now: datetime, orders: Sequence[str]
) -> list[AwaitingReport]:
    """The due ``unknown`` deliveries of ``orders``."""
    result: list[AwaitingReport] = []
    for start in range(0, len(orders), _CHUNK):
        rows = await session.execute(
            select(MR.id, MR.message_id, MR.provider_id, MR.address, MR.sent_at, MR.created_at)
            .where(_due(channel, now), MR.provider_id.in_(orders[start : start + _CHUNK]))
            .order_by(MR.id)
        )
        result += [
            AwaitingReport(row_id, message_id, str(order), address, sent_at, created_at)
            for row_id, message_id, order, address, sent_at, created_at in rows
        ]
    return result


async def settle(
    session: AsyncSession, settled: Sequence[Settle], *, now: datetime | None = None
) -> int:
    """Write final statuses for deliveries still ``unknown``; counters move with them.

    Rows that left ``unknown`` meanwhile (another poller) are left alone and not counted. Each
    settled delivery is an ``sms.report`` (and a ``delivery.<status>``) webhook event for an
    endpoint that wants it, in the same transaction.
    """
    finals: list[FinalDelivery] = []
    groups: dict[tuple[DeliveryStatus, str, str | None], list[int]] = {}
    for s in settled:
        groups.setdefault((s.status, s.detail, s.last_error), []).append(s.id)
    deltas: Counter[tuple[int, str]] = Counter()
    for (status, detail, last_error), ids in groups.items():
        for start in range(0, len(ids), _CHUNK):
            rows = await session.execute(
                update(MR)
                .where(
                    MR.id.in_(ids[start : start + _CHUNK]),
                    MR.status == DeliveryStatus.UNKNOWN,
                )
                .values(
                    status=status,
                    status_detail=detail,
                    last_error=last_error,
                    next_attempt_at=None,
                )
                .returning(MR.id, MR.message_id, MR.attempts)
                .execution_options(synchronize_session=False)
            )
            for delivery_id, message_id, attempts in rows:
                deltas[(message_id, DeliveryStatus.UNKNOWN.value)] -= 1
                deltas[(message_id, status.value)] += 1
                finals.append(FinalDelivery(delivery_id, status.value, detail, attempts))
    await add_to_counters(session, deltas)
    if finals and (subs := await webhook_queries.subscriptions(session)):
        when = now or datetime.now(UTC)
        await webhook_queries.add_delivery_events(session, subs, finals, when)
        reports = {f.status: webhook_queries.SMS_REPORT_EVENT for f in finals}
        await webhook_queries.add_delivery_events(session, subs, finals, when, event_types=reports)
    return sum(n for (_, status), n in deltas.items() if status != DeliveryStatus.UNKNOWN)


async def reschedule(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    next_at: datetime | None,
    detail: str | None = None,
    last_error: str | None = None,
) -> None:
    """Keep deliveries ``unknown`` and set their next look (``None``: stop looking)."""
    values: dict[str, object] = {"next_attempt_at": next_at}
    if detail is not None:
        values["status_detail"] = detail
    if last_error is not None:
        values["last_error"] = last_error
    for start in range(0, len(ids), _CHUNK):
        await session.execute(
            update(MR)
            .where(MR.id.in_(ids[start : start + _CHUNK]), MR.status == DeliveryStatus.UNKNOWN)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
