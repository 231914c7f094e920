"""Invoicing: billable units (``sent_number``) per period, sender and channel, and marking a
period invoiced.

Periods are calendar based and UTC: monthly, bimonthly, quarterly, half-yearly and yearly, each
starting on the first of a month that is a multiple of its length (Jan, Mar, May... for two
months). Amounts are ``cost_per_unit * sent_number`` with :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, extract, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.audit import Actor, AuditAction, record
from persistence.common_queries import AnySelect, ConflictError, InvalidFieldError
from persistence.models import DeliveryStatus, Direction, Message, MessageRecipient

PERIOD_MONTHS = {"monthly": 1, "bimonthly": 2, "quarterly": 3, "half-yearly": 6, "yearly": 12}
BILLED_STATUSES = (DeliveryStatus.SUCCESS, DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED)
OPEN_STATUSES = (DeliveryStatus.UNKNOWN, DeliveryStatus.PENDING, DeliveryStatus.SENDING)
MR = MessageRecipient


def period_start(year: int, month: int, period: str) -> date:
    months = PERIOD_MONTHS[period]
    return date(year, ((month - 1) // months) * months + 1, 1)


def period_end(start: date, period: str) -> date:
    index = start.year * 12 + start.month - 1 + PERIOD_MONTHS[period]
    return date(index // 12, index % 12 + 1, 1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class InvoiceLine:
    period_start: date
    period_end: date
    sender_id: int | None
    sender_name: str
    channel: str
    messages: int = 0
    units: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in BILLED_STATUSES})
    invoiced_units: int = 0
    to_be_invoiced_units: int = 0
    invoiced_amount: Decimal = Decimal(0)
    to_be_invoiced_amount: Decimal = Decimal(0)

    @property
    def total_units(self) -> int:
        return self.invoiced_units + self.to_be_invoiced_units


def _utc_created(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.timezone("UTC", Message.created_at)
    return Message.created_at


def _window(
    statement: AnySelect,
    start: date | None,
    end: date | None,
    sender_id: int | None,
    channel: str | None,
) -> AnySelect:
    # A test send ("send me a test") is never billed.
    statement = statement.where(Message.direction == Direction.SENT, Message.is_test.is_(False))
    if start is not None:
        statement = statement.where(Message.created_at >= _midnight(start))
    if end is not None:
        statement = statement.where(Message.created_at < _midnight(end))
    if sender_id is not None:
        statement = statement.where(Message.sender_id == sender_id)
    if channel is not None:
        statement = statement.where(Message.channel == channel)
    return statement


async def invoice_lines(
    session: AsyncSession,
    period: str,
    *,
    start: date | None = None,
    end: date | None = None,
    sender_id: int | None = None,
    channel: str | None = None,
) -> list[InvoiceLine]:
    """One line per (period, sender, channel), oldest period first."""
    created = _utc_created(session)
    year = extract("year", created).label("y")
    month = extract("month", created).label("m")
    units = _window(
        select(
            year,
            month,
            Message.sender_id,
            Message.channel,
            Message.invoiced,
            Message.cost_per_unit,
            MR.status,
            func.sum(MR.sent_number),
        )
        .join(MR, MR.message_id == Message.id)
        .where(MR.status.in_(BILLED_STATUSES)),
        start,
        end,
        sender_id,
        channel,
    ).group_by(
        year,
        month,
        Message.sender_id,
        Message.channel,
        Message.invoiced,
        Message.cost_per_unit,
        MR.status,
    )
    counts = _window(
        select(
            year,
            month,
            Message.sender_id,
            Message.channel,
            func.count(),
            func.max(Message.sender_name),
        ),
        start,
        end,
        sender_id,
        channel,
    ).group_by(year, month, Message.sender_id, Message.channel)
    lines: dict[tuple[date, int | None, str], InvoiceLine] = {}

    def line_for(y: Any, m: Any, sender: int | None, chan: str) -> InvoiceLine:
        begins = period_start(int(y), int(m), period)
        key = (begins, sender, chan)
        if key not in lines:
            lines[key] = InvoiceLine(begins, period_end(begins, period), sender, "", chan)
        return lines[key]

    for y, m, sender, chan, count, name in await session.execute(counts):
        line = line_for(y, m, sender, chan)
        line.messages += int(count)
        line.sender_name = line.sender_name or (name or "")
    for y, m, sender, chan, invoiced, cost, status, sent in await session.execute(units):
        line = line_for(y, m, sender, chan)
        n = int(sent or 0)
        amount = Decimal(cost or 0) * n
        line.units[str(status)] += n
        if invoiced:
            line.invoiced_units += n
            line.invoiced_amount += amount
        else:
            line.to_be_invoiced_units += n
            line.to_be_invoiced_amount += amount
    return [
        lines[key]
        for key in sorted(lines, key=lambda k: (k[0], k[1] if k[1] is not None else -1, k[2]))
    ]


@dataclass(frozen=True)
class MarkResult:
    messages: int
    units: int
    amount: Decimal
    message_ids: tuple[int, ...] = ()


def _aligned(start: date, period: str) -> bool:
    return start.day == 1 and (start.month - 1) % PERIOD_MONTHS[period] == 0


async def mark_invoiced(
    session: AsyncSession,
    *,
    period: str,
    start: date,
    sender_id: int,
    channel: str,
    force: bool,
    actor: Actor,
) -> MarkResult:
    """Mark the period's not-yet-invoiced messages of one sender and channel as invoiced (the
    audit log names ``actor`` and the messages marked).

    Refused while any of their deliveries may still change its billable units (``unknown``
    delivery reports, deliveries still pending or in flight), unless ``force``.
    """
    if not _aligned(start, period):
        raise InvalidFieldError(
            "period_start", f"a {period} period starts on the first day of its first month"
        )
    end = period_end(start, period)
    chosen: ColumnElement[bool] = Message.id.in_(
        _window(select(Message.id), start, end, sender_id, channel)
        .where(Message.invoiced.is_(False))
        .scalar_subquery()
    )
    if not force:
        still_open = await session.scalar(
            select(func.count())
            .select_from(MR)
            .join(Message, Message.id == MR.message_id)
            .where(chosen, MR.status.in_(OPEN_STATUSES))
        )
        if still_open:
            raise ConflictError(
                f"{still_open} deliveries in this period are not final yet "
                "(unknown delivery report or still being sent); retry later or force",
                {"open_deliveries": int(still_open)},
            )
    totals = await session.execute(
        select(Message.cost_per_unit, func.sum(MR.sent_number))
        .join(MR, MR.message_id == Message.id)
        .where(chosen, MR.status.in_(BILLED_STATUSES))
        .group_by(Message.cost_per_unit)
    )
    units = 0
    amount = Decimal(0)
    for cost, sent in totals:
        units += int(sent or 0)
        amount += Decimal(cost or 0) * int(sent or 0)
    marked = await session.execute(
        update(Message)
        .where(chosen)
        .values(invoiced=True)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    ids = tuple(sorted(int(mid) for (mid,) in marked))
    detail = {
        "period": period,
        "period_start": start.isoformat(),
        "sender_id": sender_id,
        "channel": channel,
        "force": force,
        "messages": len(ids),
        "units": units,
        "amount": str(amount),
    }
    await record(session, actor, AuditAction.INVOICES_MARKED, "message", ids, detail)
    return MarkResult(len(ids), units, amount, ids)
