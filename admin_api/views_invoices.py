"""Invoices (superusers): billable units and amounts per period, sender and channel."""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from admin_api.routing import (
    JSON,
    RequestBody,
    Response,
    api_actor,
    context,
    json_body,
    parse_query,
    render,
)
from admin_api.routing import Operation as Op
from admin_api.schemas_invoices import (
    InvoiceLineOut,
    InvoiceQuery,
    InvoiceReport,
    MarkInvoicedBody,
    MarkInvoicedOut,
    UnitsOut,
)
from persistence.invoice_queries import InvoiceLine, invoice_lines, mark_invoiced, period_end


def _line(line: InvoiceLine) -> InvoiceLineOut:
    return InvoiceLineOut(
        period_start=line.period_start,
        period_end=line.period_end,
        sender_id=line.sender_id,
        sender_name=line.sender_name,
        channel=line.channel,
        messages=line.messages,
        units=UnitsOut(**line.units, total=line.total_units),
        invoiced_units=line.invoiced_units,
        to_be_invoiced_units=line.to_be_invoiced_units,
        invoiced_amount=str(line.invoiced_amount),
        to_be_invoiced_amount=str(line.to_be_invoiced_amount),
    )


async def list_invoices(request: web.Request) -> web.Response:
    """Units by delivery outcome, invoiced and to be invoiced, per period, sender and channel."""
    ctx = context(request)
    query = parse_query(request, InvoiceQuery)
    async with ctx.sessions() as session:
        lines = await invoice_lines(
            session,
            query.period,
            start=query.start,
            end=query.end,
            sender_id=query.sender_id,
            channel=query.channel,
        )
    return render(
        InvoiceReport(
            period=query.period,
            lines=[_line(line) for line in lines],
            invoiced_amount=str(sum((x.invoiced_amount for x in lines), Decimal(0))),
            to_be_invoiced_amount=str(sum((x.to_be_invoiced_amount for x in lines), Decimal(0))),
        )
    )


async def mark_invoiced_view(request: web.Request) -> web.Response:
    """Mark one period, sender and channel invoiced (409 while delivery reports are pending)."""
    ctx = context(request)
    body = await json_body(request, MarkInvoicedBody)
    async with ctx.sessions.begin() as session:
        result = await mark_invoiced(
            session,
            period=body.period,
            start=body.period_start,
            sender_id=body.sender_id,
            channel=body.channel,
            force=body.force,
            actor=api_actor(request),
        )
    return render(
        MarkInvoicedOut(
            messages=result.messages,
            units=result.units,
            amount=str(result.amount),
            period_start=body.period_start,
            period_end=period_end(body.period_start, body.period),
        )
    )


def operations() -> list[Op]:
    return [
        Op(
            "GET",
            "/api/v1/invoices",
            list_invoices,
            "Invoice report",
            "invoices",
            {200: Response("Lines per period, sender and channel.", InvoiceReport)},
            query=InvoiceQuery,
            superuser=True,
        ),
        Op(
            "POST",
            "/api/v1/invoices/mark-invoiced",
            mark_invoiced_view,
            "Mark a period invoiced",
            "invoices",
            {200: Response("What was marked.", MarkInvoicedOut)},
            body=RequestBody({JSON: MarkInvoicedBody}),
            superuser=True,
            errors=(409,),
        ),
    ]
