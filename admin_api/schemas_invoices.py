"""Request and response schemas for invoicing."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from admin_api.schemas import YEARS_PATTERN, Body, ChannelName, Day, Id, Query, QueryId, iso_day
from persistence.invoice_queries import PERIOD_MONTHS

PeriodName = Literal["monthly", "bimonthly", "quarterly", "half-yearly", "yearly"]


class InvoiceQuery(Query):
    period: PeriodName = "monthly"
    start: Day | None = Field(None, description="First day included (UTC).")
    end: Day | None = Field(None, description="First day excluded (UTC).")
    sender_id: QueryId | None = None
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


def _starts_a_period(schema: dict[str, Any]) -> None:
    """``period_start`` is the first day of the period's first month, in JSON Schema: one
    alternative per period (a missing ``period`` is monthly)."""
    alternatives = []
    for period, months in PERIOD_MONTHS.items():
        firsts = "|".join(f"{month:02d}" for month in range(1, 13, months))
        alternatives.append(
            {
                "properties": {
                    "period": {"const": period},
                    "period_start": {"pattern": f"{YEARS_PATTERN}({firsts})-01$"},
                },
                **({} if period == "monthly" else {"required": ["period"]}),
            }
        )
    schema["anyOf"] = alternatives


# The document states this date by pattern alone (per period, in MarkInvoicedBody's anyOf).
PeriodStart = Annotated[date, BeforeValidator(iso_day), WithJsonSchema({"type": "string"})]


class MarkInvoicedBody(Body):
    model_config = ConfigDict(json_schema_extra=_starts_a_period)

    period_start: PeriodStart = Field(
        description="The first day of the period's first month, e.g. 2024-04-01 for Q2."
    )
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
