"""Invoices (superusers): billable units and amounts per period, sender and channel, and marking
a period invoiced (refused, and explained, while delivery reports are still open)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    PageError,
    actor,
    api_context,
    flash,
    form,
    i18n,
    int_field,
    redirect,
    render,
    text_field,
    tr,
    user,
)
from admin_api.context import ApiContext
from channels.composition import CHANNELS
from persistence.common_queries import ConflictError, InvalidFieldError
from persistence.invoice_queries import PERIOD_MONTHS, invoice_lines, mark_invoiced, period_end

Route = tuple[str, str, Any, str]


def _superuser(request: web.Request) -> None:
    if not user(request).is_superuser:
        raise PageError(403, tr(request, "Only a superuser sees invoices."))


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _period(raw: str) -> str:
    return raw if raw in PERIOD_MONTHS else "monthly"


async def invoices_page(request: web.Request) -> web.Response:
    _superuser(request)
    query = request.query
    period = _period(query.get("period", ""))
    start, end = _date(query.get("start", "")), _date(query.get("end", ""))
    channel = query.get("channel") if query.get("channel") in CHANNELS else None
    async with api_context(request).sessions() as session:
        lines = await invoice_lines(
            session,
            period,
            start=start,
            end=end,
            sender_id=int_field(query, "sender_id"),
            channel=channel,
        )
    return await render(
        request,
        "invoices.html",
        {
            "lines": lines,
            "period": period,
            "periods": list(PERIOD_MONTHS),
            "channels": CHANNELS,
            "raw": query,
            "invoiced": sum((x.invoiced_amount for x in lines), Decimal(0)),
            "to_invoice": sum((x.to_be_invoiced_amount for x in lines), Decimal(0)),
        },
    )


def _target(data: Any) -> dict[str, Any] | None:
    period = text_field(data, "period", 20)
    start = _date(text_field(data, "period_start", 10))
    sender_id = int_field(data, "sender_id")
    channel = text_field(data, "channel", 20)
    if period not in PERIOD_MONTHS or start is None or sender_id is None or channel not in CHANNELS:
        return None
    return {"period": period, "start": start, "sender_id": sender_id, "channel": channel}


async def mark_confirm(request: web.Request) -> web.Response:
    _superuser(request)
    target = _target(request.query)
    if target is None:
        raise PageError(422, tr(request, "Choose a line of the invoice report to mark."))
    end = period_end(target["start"], target["period"])
    return await render(
        request, "invoice_confirm.html", {"target": target, "end": end, "conflict": None}
    )


async def mark(request: web.Request) -> web.Response:
    _superuser(request)
    data = await form(request)
    target = _target(data)
    if target is None:
        raise PageError(422, tr(request, "Choose a line of the invoice report to mark."))
    force = data.get("force") == "1"
    try:
        async with api_context(request).sessions.begin() as session:
            result = await mark_invoiced(session, force=force, actor=actor(request), **target)
    except ConflictError as exc:
        end = period_end(target["start"], target["period"])
        details = exc.details or {}
        return await render(
            request,
            "invoice_confirm.html",
            {"target": target, "end": end, "conflict": details.get("open_deliveries", 0)},
            409,
        )
    except InvalidFieldError as exc:
        raise PageError(422, exc.message) from None
    await flash(
        request,
        tr(
            request,
            "Marked invoiced: %(messages)s messages, %(units)s units, %(amount)s.",
            messages=result.messages,
            units=result.units,
            amount=i18n(request).number(result.amount),
        ),
    )
    return redirect(f"/invoices?period={target['period']}")


def routes(_context: ApiContext) -> list[Route]:
    return [
        ("GET", "/invoices", invoices_page, "invoices"),
        ("GET", "/invoices/mark", mark_confirm, "invoice_mark_confirm"),
        ("POST", "/invoices/mark", mark, "invoice_mark"),
    ]
