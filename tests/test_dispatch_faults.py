"""Delivering through faults: the database going away mid-broadcast, a Bot API outage, a cache
smaller than what is in flight, and counters a person can follow while it all happens."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from admin_api.metrics import Metrics
from channels.breaker import BreakerState
from persistence.database import create_engine, create_session_factory
from persistence.models import DeliveryStatus, Message, MessageRecipient, MessageStatus
from persistence.outbox import read_counters
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import wait_until
from tests.conftest import POSTGRES_ADMIN_URL, Database
from tests.factories import FakeClock, make_customers
from tests.harness import pipeline
from tests.tcp_proxy import TcpProxy, tcp_proxy

CHAT_BASE = 8_100_000
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


async def _linked(db: Database, sim: TelegramSimulator, count: int) -> list[int]:
    customers = await make_customers(
        db.sessions, count, telegram_chat_id=lambda i: CHAT_BASE + i, name=lambda i: f"P{i}"
    )
    for c in customers:
        assert c.telegram_chat_id is not None
        sim.add_user(c.telegram_chat_id, c.name)
    return [c.id for c in customers]


@asynccontextmanager
async def _through_proxy(db: Database) -> AsyncIterator[tuple[Database, TcpProxy]]:
    """The same PostgreSQL database, reached through a proxy the test can cut."""
    url = make_url(db.url)
    async with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        engine = create_engine(proxied)
        try:
            yield Database(db.backend, proxied, engine, create_session_factory(engine)), proxy
        finally:
            await engine.dispose()


async def _statuses(db: Database, message_id: int) -> dict[str, int]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(MessageRecipient.status, func.count())
            .where(MessageRecipient.message_id == message_id)
            .group_by(MessageRecipient.status)
        )
        return {status: int(n) for status, n in rows}


async def _all_final(db: Database, message_id: int, total: int) -> bool:
    statuses = await _statuses(db, message_id)
    return sum(n for s, n in statuses.items() if s not in ("pending", "sending")) == total


def _sends_per_chat(sim: TelegramSimulator, count: int) -> list[int]:
    return [len(sim.messages_to(CHAT_BASE + i)) for i in range(count)]


async def _kill_connections(database: str) -> None:
    """What a PostgreSQL restart does to its clients: every session is terminated."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()


@POSTGRES_ONLY
@pytest.mark.parametrize(("fault", "seconds"), [("network-cut", 15), ("server-restart", 5)])
async def test_a_database_outage_mid_broadcast_sends_nothing_twice(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    seconds: float,
) -> None:
    """PostgreSQL away mid-broadcast (15 s cut off, or restarted and back after 5 s): every
    person gets the message exactly once, every delivery ends success, and the log says so in a
    few lines, not a traceback per iteration."""
    recipients = 40
    ids = await _linked(db, telegram_sim, recipients)
    async with (
        _through_proxy(db) as (proxied, proxy),
        pipeline(
            proxied, telegram_sim, tmp_path, batch_size=10, rate=20, clock=FakeClock.real()
        ) as p,
    ):
        await p.dispatcher.start()
        message_id = (await p.send(recipients={"customer": ids})).messages[0].id
        await telegram_sim.wait_for_sends(8, timeout=30)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            if fault == "server-restart":
                await _kill_connections(make_url(db.url).database or "")
            await proxy.cut()
            await asyncio.sleep(seconds)  # the outage lasts this long (a duration, not a wait)
            await proxy.restore()
            await db.engine.dispose()  # a restart also ends the test's own connections
            await wait_until(
                lambda: _all_final(db, message_id, recipients), within=60, what="all final"
            )
        outage_lines = [r for r in caplog.records if r.name.startswith("channels.")]
    assert _sends_per_chat(telegram_sim, recipients) == [1] * recipients
    assert await _statuses(db, message_id) == {"success": recipients}
    async with db.sessions() as session:
        assert (await read_counters(session, [message_id]))[message_id] == {"success": recipients}
        message = await session.get(Message, message_id)
    assert message is not None and message.status == MessageStatus.DONE
    assert not [r for r in outage_lines if r.exc_info], "no traceback for an outage"
    assert len(outage_lines) <= 12, [r.getMessage() for r in outage_lines]
    assert any("database unreachable" in r.getMessage() for r in outage_lines)


@POSTGRES_ONLY
async def test_a_45_second_bot_api_outage_fails_nothing_and_shows_the_breaker(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Telegram answering only 502s for 45 s: the channel pauses behind its breaker (visible in
    /metrics), probes now and then, spends no attempts, and delivers everything afterwards."""
    recipients = 20
    ids = await _linked(db, telegram_sim, recipients)
    metrics = Metrics()
    async with pipeline(
        db,
        telegram_sim,
        tmp_path,
        batch_size=10,
        rate=100,
        clock=FakeClock.real(),
        observer=metrics,
        breaker_max_open_seconds=10,
    ) as p:
        telegram_sim.set_fault_rates(rate_5xx=1.0)
        await p.dispatcher.start()
        message_id = (await p.send(recipients={"customer": ids})).messages[0].id
        breaker = p.dispatcher.breakers["telegram"]
        await wait_until(_async(lambda: breaker.openings > 0), within=30, what="breaker open")
        assert b'herald_breaker_open{channel="telegram"} 1.0' in metrics.render()
        tried_before = telegram_sim.received_count["sendMessage"]
        started = time.monotonic()
        while time.monotonic() - started < 45:  # the outage lasts 45 s (a duration)
            await asyncio.sleep(1)
            assert (await _statuses(db, message_id)).get("failed", 0) == 0
        probes = telegram_sim.received_count["sendMessage"] - tried_before
        telegram_sim.set_fault_rates(rate_5xx=0.0)
        await wait_until(
            lambda: _all_final(db, message_id, recipients), within=60, what="all final"
        )
    assert await _statuses(db, message_id) == {"success": recipients}
    assert probes <= 12, f"{probes} requests during the outage: the breaker must hold them back"
    assert b'herald_breaker_open{channel="telegram"} 0.0' in metrics.render()
    async with db.sessions() as session:
        attempts = await session.scalar(
            select(func.max(MessageRecipient.attempts)).where(
                MessageRecipient.message_id == message_id
            )
        )
    assert attempts is not None and attempts <= 2


async def test_a_five_minute_bot_api_outage_on_a_simulated_clock_fails_nothing(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Five minutes of 502s (simulated time, second by second): nothing fails, the breaker lets
    through only occasional probes, and everything is delivered once Telegram is back."""
    recipients = 30
    ids = await _linked(db, telegram_sim, recipients)
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10, max_attempts=3) as p:
        telegram_sim.set_fault_rates(rate_5xx=1.0)
        message_id = (await p.send(recipients={"customer": ids})).messages[0].id
        for _ in range(300):
            await p.dispatcher.drain()
            p.clock.advance(1)
        assert "failed" not in await _statuses(db, message_id)
        during = telegram_sim.received_count["sendMessage"]
        assert p.dispatcher.breakers["telegram"].state is not BreakerState.CLOSED
        telegram_sim.set_fault_rates(rate_5xx=0.0)
        for _ in range(120):
            await p.dispatcher.drain()
            if await _all_final(db, message_id, recipients):
                break
            p.clock.advance(1)
        assert await _statuses(db, message_id) == {"success": recipients}
    # The first window's failures, then one probe per opening (5, 10, 20, 40, 60, 60... s).
    assert during <= 10 + 12, during
    assert _sends_per_chat(telegram_sim, recipients) == [1] * recipients


async def test_more_messages_in_flight_than_the_cache_holds(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Batches that mix cached messages with new ones still deliver when the message cache is
    full (it once forgot a message a batch still needed and failed the whole batch)."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=3) as p:
        p.dispatcher.config = dataclasses.replace(p.dispatcher.config, message_cache_size=1)
        people = await make_customers(db.sessions, 2)
        sent = [
            await p.send(channels=["storage"], recipients={"customer": [c.id for c in people]})
            for _ in range(4)
        ]
        assert await p.dispatcher.drain() == 8
        for result in sent:
            assert await p.counters(result.messages[0].id) == {"success": 2}


async def test_counters_move_every_second_and_the_message_says_sending(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A 90-recipient broadcast at 30/s in one batch: its counters move while it is delivered
    (several partial counts are seen, never going back), and the message is 'sending' meanwhile,
    then 'done'."""
    recipients = 90
    ids = await _linked(db, telegram_sim, recipients)
    async with pipeline(
        db, telegram_sim, tmp_path, batch_size=200, rate=30, clock=FakeClock.real()
    ) as p:
        message_id = (await p.send(recipients={"customer": ids})).messages[0].id
        assert (await p.message(message_id)).status == MessageStatus.QUEUED
        await p.dispatcher.start()
        seen: list[int] = []
        statuses: set[str] = set()
        started = time.monotonic()
        while True:
            success = (await p.counters(message_id)).get("success", 0)
            statuses.add((await p.message(message_id)).status)
            if not seen or seen[-1] != success:
                seen.append(success)
            if success == recipients:
                break
            assert time.monotonic() - started < 30, seen
            await asyncio.sleep(0.05)  # sampling what a watcher would see, not synchronisation
    partial = [count for count in seen if 0 < count < recipients]
    # One batch holds all 90, sent 30 at the start of each second: recorded in one piece, a
    # watcher would see 0 then 90; recorded in slices, it sees the count climb (30, 60).
    assert len(partial) >= 2, seen
    assert seen == sorted(seen), seen
    assert MessageStatus.SENDING in statuses
    assert (await p.message(message_id)).status == MessageStatus.DONE


async def test_the_rescue_leaves_a_live_workers_batch_alone(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A worker that still holds a batch past its lease (its renewals failed) keeps it: its own
    rescue does not hand the rows to be sent again, and its outcomes are recorded."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10) as p:
        ids = await _linked(db, telegram_sim, 3)
        message_id = (await p.send(recipients={"customer": ids})).messages[0].id
        claimed = await p.dispatcher._claim("telegram")
        p.clock.advance(31)  # past the 30 s lease, not renewed
        assert await p.dispatcher.rescue() == 0
        await p.dispatcher._process("telegram", claimed)
        assert await p.counters(message_id) == {"success": 3}
        assert _sends_per_chat(telegram_sim, 3) == [1, 1, 1]
        assert {r.status for r in await p.deliveries(message_id)} == {DeliveryStatus.SUCCESS}


def _async(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check
