"""Request and response schemas for invoicing."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from admin_api.schemas import Body, ChannelName, Day, Id, Query

PeriodName = Literal["monthly", "bimonthly", "quarterly", "half-yearly", "yearly"]


class InvoiceQuery(Query):
    period: PeriodName = "monthly"
    start: Day | None = Field(None, description="First day included (UTC).")
    end: Day | None = Field(None, description="First day excluded (UTC).")
    sender_id: Id | None = None
    channel: ChannelName | None = None


class UnitsOut(BaseModel):
    success: int
    unknown: int
    failed: int
    total: int


class InvoiceLineOut(BaseModel):
    period_start: date
    period_end: date = Field(description="Exclusive.")
    sender_id: int | None
    sender_name: str
    channel: str
    messages: int
    units: UnitsOut
    invoiced_units: int
    to_be_invoiced_units: int
    invoiced_amount: str = Field(description="Decimal, as a string.")
    to_be_invoiced_amount: str


class InvoiceReport(BaseModel):
    period: PeriodName
    lines: list[InvoiceLineOut]
    invoiced_amount: str
    to_be_invoiced_amount: str


class MarkInvoicedBody(Body):
    period_start: Day
    period: PeriodName = "monthly"
    sender_id: Id
    channel: ChannelName
    force: bool = Field(False, description="Mark even while delivery reports are unknown.")


class MarkInvoicedOut(BaseModel):
    messages: int
    units: int
    amount: str
    period_start: date
    period_end: date
