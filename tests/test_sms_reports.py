"""SMS delivery reports: Skebby order states settle ``unknown`` deliveries, with backoff, an end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from channels.skebby_gateway import OrderState, SkebbyGateway
from channels.sms_reports import ReportSummary, sms_report_job
from persistence.models import DeliveryStatus
from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.harness import Pipeline
from tests.test_sms_channel import (
    number,
    send_sms,
    sim_clock,
    skebby,
    sms_pipeline,
    with_mobiles,
)

__all__ = ["sim_clock", "skebby"]  # fixtures shared with the channel tests

MAX_AGE = timedelta(hours=72)
GETS = "GET sms/{order_id}"


@asynccontextmanager
async def reporting(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    skebby: SkebbySimulator,
    recipients: int,
    **channel: int,
) -> AsyncIterator[tuple[Pipeline, int, SkebbyGateway]]:
    """A sent SMS message (all ``unknown``) and a report gateway of its own."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby, **channel) as (p, _):
        message_id = await send_sms(p, await with_mobiles(db, recipients))
        assert await p.dispatcher.drain() == recipients
        async with SkebbyGateway(skebby.base_url, "sandbox", "sandbox", timeout=5) as gateway:
            yield p, message_id, gateway


async def poll(p: Pipeline, gateway: SkebbyGateway, **kw: int) -> ReportSummary:
    return await sms_report_job(p.db.sessions, gateway, p.clock, max_age=MAX_AGE, **kw)


def only_order(skebby: SkebbySimulator) -> str:
    (order_id,) = skebby.orders
    return order_id


async def test_every_order_state_maps_to_its_delivery_status(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """DLVRD/SENT become success, pending states stay unknown, every other state fails with it."""
    states = list(OrderState)
    async with reporting(
        db, telegram_sim, tmp_path, skebby, len(states), batch_size=len(states)
    ) as (p, message_id, gateway):
        order_id = only_order(skebby)
        for i, state in enumerate(states):
            skebby.set_state(order_id, number(i), state.value)
        summary = await poll(p, gateway)
        assert skebby.requests[GETS] == 1
        rows = await p.deliveries(message_id)
        expected_success = {"DLVRD", "SENT"}
        expected_pending = {"WAITING", "WAIT4DLVR", "SCHEDULED"}
        for row, state in zip(rows, states, strict=True):
            if state.value in expected_success:
                assert row.status == DeliveryStatus.SUCCESS, state
            elif state.value in expected_pending:
                assert row.status == DeliveryStatus.UNKNOWN, state
                assert row.status_detail == f"Skebby: {state.value}"
            else:
                assert row.status == DeliveryStatus.FAILED, state
                assert state.value in row.status_detail and state.value in (row.last_error or "")
        failed = len(states) - len(expected_success) - len(expected_pending)
        assert (summary.delivered, summary.failed, summary.pending) == (2, failed, 3)
        assert await p.counters(message_id) == {"success": 2, "failed": failed, "unknown": 3}


async def test_one_lookup_per_order_and_counters_follow(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Three orders need three lookups; all delivered, the message counts ten successes."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 10, batch_size=4) as (
        p,
        message_id,
        gateway,
    ):
        skebby.advance()  # WAITING -> DLVRD
        summary = await poll(p, gateway)
        assert skebby.requests[GETS] == 3 == summary.orders
        assert await p.counters(message_id) == {"success": 10}
        assert (await poll(p, gateway)).orders == 0  # nothing left to look at
        assert skebby.requests[GETS] == 3


async def test_pending_orders_are_polled_less_often_as_they_age(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A report that does not come is asked for again later and later, not every minute."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 2) as (p, message_id, gateway):
        sent = p.clock.now
        delays: list[timedelta] = []
        ages = [timedelta(0), timedelta(minutes=20), timedelta(hours=2), timedelta(hours=30)]
        for age in ages:
            p.clock.now = sent + age
            assert (await poll(p, gateway)).pending == 2
            (row, _) = await p.deliveries(message_id)
            assert row.next_attempt_at is not None
            delays.append(row.next_attempt_at - p.clock.now)
            assert (await poll(p, gateway)).orders == 0  # not due yet: no request
        assert skebby.requests[GETS] == len(ages)
        minutes = [d.total_seconds() / 60 for d in delays]
        assert minutes == [1, 2, 12, 60]


async def test_polling_stops_after_the_maximum_age_with_a_reason(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """After 72 hours without a report the SMS stays unknown, says so, and is never asked again."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 2) as (p, message_id, gateway):
        p.clock.advance(MAX_AGE.total_seconds() + 1)
        summary = await poll(p, gateway)
        assert summary.expired == 2 and skebby.requests[GETS] == 1  # one last look
        rows = await p.deliveries(message_id)
        for row in rows:
            assert row.status == DeliveryStatus.UNKNOWN and row.next_attempt_at is None
            assert row.status_detail.startswith("no delivery report after 72 hours")
        p.clock.advance(10 * 24 * 3600)
        assert (await poll(p, gateway)).orders == 0
        assert skebby.requests[GETS] == 1
        assert await p.counters(message_id) == {"unknown": 2}


async def test_a_late_report_before_the_limit_still_counts(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A report arriving on the last look before the age limit settles the delivery."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 1) as (p, message_id, gateway):
        p.clock.advance(MAX_AGE.total_seconds() + 1)
        skebby.advance()
        assert (await poll(p, gateway)).delivered == 1
        assert await p.counters(message_id) == {"success": 1}


async def test_restart_between_polls_loses_nothing(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A new process with a new Skebby login picks the pending reports up from the database."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 3) as (p, message_id, gateway):
        assert (await poll(p, gateway)).pending == 3
        p.clock.advance(120)
    skebby.advance()
    async with SkebbyGateway(skebby.base_url, "sandbox", "sandbox", timeout=5) as fresh:
        summary = await sms_report_job(db.sessions, fresh, p.clock, max_age=MAX_AGE)
        assert summary.delivered == 3
        assert fresh.logins == 1
    assert await p.counters(message_id) == {"success": 3}


@pytest.mark.parametrize("status", [503, 404])
async def test_skebby_trouble_postpones_the_order(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    skebby: SkebbySimulator,
    status: int,
) -> None:
    """A failed lookup changes no status; the order is looked at again a minute later."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 2) as (p, message_id, gateway):
        skebby.fail_next("sms/", status, "trouble", method="GET")
        summary = await poll(p, gateway)
        assert summary.errors == 1
        rows = await p.deliveries(message_id)
        assert all(r.status == DeliveryStatus.UNKNOWN for r in rows)
        assert all(str(status) in (r.last_error or "") for r in rows)
        skebby.advance()
        p.clock.advance(60)
        assert (await poll(p, gateway)).delivered == 2
        assert await p.counters(message_id) == {"success": 2}


async def test_refused_credentials_keep_every_report_due(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """With the credentials refused nothing is rescheduled; the next run with good ones settles."""
    async with reporting(db, telegram_sim, tmp_path, skebby, 2) as (p, message_id, gateway):
        skebby.password = "changed-elsewhere"
        skebby.expire_sessions()
        assert (await poll(p, gateway)).errors == 1
        skebby.password = "sandbox"
        skebby.advance()
        assert (await poll(p, gateway)).delivered == 2
        assert await p.counters(message_id) == {"success": 2}
