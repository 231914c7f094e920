"""Invoices over the admin API: units per period, sender and channel, amounts in Decimal, and
marking a period invoiced (refused while delivery reports are unknown unless forced)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert

from persistence.models import Message, MessageRecipient, User
from tests.api_support import Api, running_api
from tests.conftest import Database


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def _message(
    api: Api,
    sender: User,
    channel: str,
    when: datetime,
    cost: str,
    deliveries: list[tuple[str, int]],
    *,
    invoiced: bool = False,
) -> int:
    async with api.db.sessions.begin() as session:
        message = Message(
            broadcast_id=str(uuid.uuid4()),
            channel=channel,
            body="b",
            cost_per_unit=Decimal(cost),
            sender_id=sender.id,
            sender_name=sender.username,
            invoiced=invoiced,
            status="done",
            created_at=when,
            total=len(deliveries),
        )
        session.add(message)
        await session.flush()
        await session.execute(
            insert(MessageRecipient),
            [
                {
                    "message_id": message.id,
                    "channel": channel,
                    "recipient_kind": "customer",
                    "recipient_id": i + 1,
                    "status": status,
                    "sent_number": units,
                }
                for i, (status, units) in enumerate(deliveries)
            ],
        )
        return message.id


async def _seed(api: Api) -> User:
    other, _ = await api.user("marketing")
    jan = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    await _message(
        api, api.admin, "sms", jan, "0.05", [("success", 2), ("unknown", 3), ("failed", 1)]
    )
    await _message(
        api,
        api.admin,
        "sms",
        datetime(2026, 2, 1, tzinfo=UTC),
        "0.05",
        [("success", 4)],
        invoiced=True,
    )
    await _message(api, other, "email", datetime(2026, 3, 9, tzinfo=UTC), "0.001", [("success", 1)])
    return other


async def test_monthly_and_quarterly_units_and_amounts(api: Api) -> None:
    """Units split by outcome; invoiced and to-be-invoiced amounts are cost x units, exactly."""
    other = await _seed(api)
    monthly = await api.get("/api/v1/invoices", expect=200)
    jan, feb, mar = monthly["lines"]
    assert (jan["period_start"], jan["period_end"]) == ("2026-01-01", "2026-02-01")
    assert jan["units"] == {"success": 2, "unknown": 3, "failed": 1, "total": 6}
    assert Decimal(jan["to_be_invoiced_amount"]) == Decimal("0.30")
    assert (feb["invoiced_units"], Decimal(feb["invoiced_amount"])) == (4, Decimal("0.20"))
    assert (mar["sender_id"], mar["channel"], mar["messages"]) == (other.id, "email", 1)
    quarterly = await api.get("/api/v1/invoices?period=quarterly&channel=sms", expect=200)
    (q1,) = quarterly["lines"]
    assert q1["period_start"] == "2026-01-01" and q1["period_end"] == "2026-04-01"
    assert (q1["invoiced_units"], q1["to_be_invoiced_units"], q1["messages"]) == (4, 6, 2)
    yearly = await api.get("/api/v1/invoices?period=yearly", expect=200)
    assert Decimal(yearly["to_be_invoiced_amount"]) == Decimal("0.301")
    filtered = await api.get(f"/api/v1/invoices?sender_id={other.id}&start=2026-03-01", expect=200)
    assert [line["channel"] for line in filtered["lines"]] == ["email"]


async def test_mark_invoiced_waits_for_unknown_reports_unless_forced(api: Api) -> None:
    """A period with unknown SMS reports is refused with 409; force marks it invoiced."""
    await _seed(api)
    body = {"period_start": "2026-01-01", "sender_id": api.admin.id, "channel": "sms"}
    refused = await api.post("/api/v1/invoices/mark-invoiced", json=body, expect=409)
    assert refused["error"]["details"] == {"open_deliveries": 1}
    marked = await api.post(
        "/api/v1/invoices/mark-invoiced", json={**body, "force": True}, expect=200
    )
    assert (marked["messages"], marked["units"]) == (1, 6)
    assert Decimal(marked["amount"]) == Decimal("0.30")
    jan = (await api.get("/api/v1/invoices?end=2026-02-01", expect=200))["lines"][0]
    assert (jan["invoiced_units"], jan["to_be_invoiced_units"]) == (6, 0)
    misaligned = {**body, "period": "quarterly", "period_start": "2026-02-01"}
    await api.post("/api/v1/invoices/mark-invoiced", json=misaligned, expect=422)


async def test_invoices_are_for_superusers_only(api: Api) -> None:
    """A user who is not a superuser gets 403."""
    _, key = await api.user("clerk")
    denied = await api.get("/api/v1/invoices", key=key, expect=403)
    assert denied["error"]["code"] == "forbidden"
