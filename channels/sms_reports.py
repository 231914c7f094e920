"""SMS delivery reports: poll Skebby's order states and settle ``unknown`` SMS deliveries.

A scheduled job (every minute) takes the orders with deliveries due for a look, asks
``GET sms/{order_id}`` once per order, and in one transaction:

- DLVRD/SENT → ``success``; WAITING/WAIT4DLVR/SCHEDULED → still ``unknown``, looked at again
  after :func:`poll_delay` (longer as the order ages); any other state → ``failed`` with the state
  as the reason;
- an order older than ``max_age`` that is still pending gets one last look, then stays
  ``unknown`` with the reason "no delivery report after N hours" and is never polled again.

Everything lives in the database (the next look is the row's ``next_attempt_at``), so a restart
loses nothing. Skebby trouble (timeouts, 5xx, a 404) only postpones an order; refused
credentials end the run early and leave everything due for the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Outcome
from channels.clock import Clock
from channels.skebby_channel import outcome_of_state, same_number
from channels.skebby_gateway import (
    OrderStatus,
    SkebbyAuthenticationError,
    SkebbyException,
    SkebbyGateway,
)
from persistence import sms_reports as sql
from persistence.database import SessionFactory
from persistence.models import DeliveryStatus

logger = logging.getLogger(__name__)

CHANNEL = "sms"
MIN_POLL_SECONDS = 60.0
MAX_POLL_SECONDS = 3600.0
_CONCURRENCY = 4


def poll_delay(age: timedelta) -> timedelta:
    """A tenth of the order's age, between one minute and one hour."""
    seconds = min(MAX_POLL_SECONDS, max(MIN_POLL_SECONDS, age.total_seconds() / 10))
    return timedelta(seconds=seconds)


@dataclass
class ReportSummary:
    orders: int = 0  # orders looked at
    delivered: int = 0
    failed: int = 0
    pending: int = 0  # still unknown, looked at again later
    expired: int = 0  # still unknown, no more looks
    errors: int = 0  # orders Skebby could not answer for this time

    @property
    def changed(self) -> bool:
        return bool(self.delivered or self.failed or self.expired or self.errors)


_Answer = OrderStatus | SkebbyException


@dataclass(frozen=True)
class _Pending:
    row: sql.AwaitingReport
    detail: str | None  # the state Skebby reported, when it answered
    error: str | None = None


async def poll_sms_reports(
    sessions: SessionFactory,
    gateway: SkebbyGateway,
    clock: Clock,
    *,
    max_age: timedelta,
    batch_limit: int = 200,
) -> ReportSummary:
    """Look at up to ``batch_limit`` due orders and record what Skebby says about them."""
    now = clock()
    async with sessions() as session:
        orders = await sql.due_orders(session, channel=CHANNEL, now=now, limit=batch_limit)
        rows = await sql.awaiting(session, channel=CHANNEL, now=now, orders=orders)
    summary = ReportSummary(orders=len(orders))
    if not orders:
        return summary
    by_order: dict[str, list[sql.AwaitingReport]] = defaultdict(list)
    for row in rows:
        by_order[row.provider_id].append(row)
    answers = await _ask(gateway, orders)
    if any(isinstance(a, SkebbyAuthenticationError) for a in answers.values()):
        logger.error("Skebby refused the credentials: delivery reports wait for the next run")
        summary.errors = len(orders)
        return summary
    settled: list[sql.Settle] = []
    async with sessions.begin() as session:
        for order_id, members in by_order.items():
            answer = answers[order_id]
            if isinstance(answer, SkebbyException):
                summary.errors += 1
                logger.warning("no report for Skebby order %s this time: %s", order_id, answer)
                pending = [_Pending(m, None, f"report lookup failed: {answer}") for m in members]
            else:
                pending = _classify(answer, members, settled, summary)
            await _postpone(session, pending, now, max_age, summary)
        await sql.settle(session, settled, now=now)
    return summary


async def _ask(gateway: SkebbyGateway, orders: Sequence[str]) -> dict[str, _Answer]:
    semaphore = asyncio.Semaphore(_CONCURRENCY)

    async def one(order_id: str) -> _Answer:
        async with semaphore:
            try:
                return await gateway.get_order_state(order_id)
            except SkebbyException as exc:  # 404, 5xx, timeouts: postpone this order
                return exc

    answers = await asyncio.gather(*(one(o) for o in orders))
    return dict(zip(orders, answers, strict=True))


def _classify(
    status: OrderStatus,
    members: Sequence[sql.AwaitingReport],
    settled: list[sql.Settle],
    summary: ReportSummary,
) -> list[_Pending]:
    """Settle the final states; return the rows still pending with their current state."""
    pending: list[_Pending] = []
    for row in members:
        state = next(
            (r.status for r in status.recipients if same_number(r.destination, row.address)),
            None,
        )
        if state is None:
            missing = f"Skebby order {status.order_id} does not list this number"
            pending.append(_Pending(row, None, missing))
            continue
        outcome = outcome_of_state(state)
        if outcome is Outcome.SUCCESS:
            settled.append(sql.Settle(row.id, DeliveryStatus.SUCCESS, f"Skebby: {state.value}"))
            summary.delivered += 1
        elif outcome is Outcome.FAILED:
            reason = f"Skebby: {state.value}"
            settled.append(sql.Settle(row.id, DeliveryStatus.FAILED, reason, last_error=reason))
            summary.failed += 1
        else:
            pending.append(_Pending(row, f"Skebby: {state.value}"))
    return pending


async def _postpone(
    session: AsyncSession,
    pending: Sequence[_Pending],
    now: datetime,
    max_age: timedelta,
    summary: ReportSummary,
) -> None:
    if not pending:
        return
    age = now - min(p.row.sent_at or p.row.created_at for p in pending)
    expired = age >= max_age
    hours = max_age.total_seconds() / 3600
    groups: dict[tuple[str | None, str | None], list[int]] = defaultdict(list)
    for p in pending:
        groups[(p.detail, p.error)].append(p.row.id)
    for (detail, error), ids in groups.items():
        if expired:
            last = detail or error or "no answer"
            await sql.reschedule(
                session,
                ids,
                next_at=None,
                detail=f"no delivery report after {hours:g} hours (last: {last})",
                last_error=error,
            )
        else:
            next_at = now + poll_delay(age)
            await sql.reschedule(session, ids, next_at=next_at, detail=detail, last_error=error)
    if expired:
        summary.expired += len(pending)
    else:
        summary.pending += len(pending)


async def sms_report_job(
    sessions: SessionFactory,
    gateway: SkebbyGateway,
    clock: Clock,
    *,
    max_age: timedelta,
    batch_limit: int = 200,
) -> ReportSummary:
    """The scheduled job: one polling round, logged. Schedule every minute, one instance."""
    summary = await poll_sms_reports(
        sessions, gateway, clock, max_age=max_age, batch_limit=batch_limit
    )
    if summary.changed:
        logger.info("SMS delivery reports: %s", summary)
    return summary
