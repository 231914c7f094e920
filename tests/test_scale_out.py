"""Several ``herald run`` processes on one PostgreSQL: one Telegram budget, one leader at a time,
failover without loss, scheduled messages once, and SQLite refusing a second process."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.delivery import build_composer
from channels.composition import ComposeRequest
from persistence.models import Customer, MessageRecipient
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import Person, free_port, wait_until
from tests.conftest import Database
from tests.factories import FakeClock, delivery_settings, make_customers, make_user
from tests.service_process import ServiceProcess
from tests.tcp_proxy import TcpProxy, tcp_proxy

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
FIRST_CHAT = 6_000_000
BUDGET = 100
TTL = 5.0
SETTINGS = {
    "telegram_rate_per_second": str(BUDGET),
    "leadership_ttl_seconds": str(TTL),
    "leadership_renew_seconds": "1",
    "dispatch_batch_size": "50",
    "dispatch_lease_seconds": "10",
}


async def _people(db: Database, sim: TelegramSimulator, count: int) -> list[int]:
    await make_customers(
        db.sessions, count, telegram_chat_id=lambda i: FIRST_CHAT + i, name=lambda i: f"S{i}"
    )
    for i in range(count):
        sim.add_user(FIRST_CHAT + i, f"S{i}")
    async with db.sessions() as session:
        return list((await session.execute(select(Customer.id).order_by(Customer.id))).scalars())


async def _broadcast(
    db: Database, tmp_path: Path, ids: list[int], *, send_at: datetime | None = None
) -> int:
    """Composed in the test process, as the API of any process would: the NOTIFY at commit is
    what tells the Herald processes about it."""
    user = await make_user(db.sessions)
    composer = build_composer(delivery_settings(db.url, tmp_path), db.sessions, FakeClock.real())
    request = ComposeRequest(
        channels=["telegram"], body="Water off tomorrow", recipients={"customer": ids}
    )
    request.send_at = send_at
    return (await composer.send(user, request)).messages[0].id


async def _final(db: Database, message_id: int) -> dict[str, int]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(MessageRecipient.status, func.count())
            .where(MessageRecipient.message_id == message_id)
            .group_by(MessageRecipient.status)
        )
        return {status: int(n) for status, n in rows}


async def _all_success(db: Database, message_id: int, total: int) -> bool:
    return (await _final(db, message_id)).get("success", 0) == total


async def _readiness(process: ServiceProcess) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{process.port}/readyz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def _metrics(process: ServiceProcess) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{process.port}/metrics") as response,
    ):
        return await response.text()


async def _telegram_leader(processes: list[ServiceProcess]) -> ServiceProcess | None:
    for process in processes:
        if process.process is None or process.process.returncode is not None:
            continue
        try:
            leads = (await _readiness(process))["leads"]
        except aiohttp.ClientError:
            continue
        if any(name.startswith("telegram:") for name in leads):
            return process
    return None


@asynccontextmanager
async def _cluster(
    count: int,
    tmp_path: Path,
    urls: list[str],
    sim: TelegramSimulator,
    *,
    each: list[dict[str, str]] | None = None,
    **settings: str,
) -> AsyncIterator[list[ServiceProcess]]:
    """``count`` processes; ``each`` holds settings of one process apiece (its PORT...)."""
    own = each or [{} for _ in range(count)]
    processes = [
        ServiceProcess.for_simulator(
            tmp_path / f"p{i}", urls[i % len(urls)], sim, **{**SETTINGS, **settings, **own[i]}
        )
        for i in range(count)
    ]
    for i, process in enumerate(processes):
        (tmp_path / f"p{i}").mkdir(exist_ok=True)
        await process.start()
    try:
        yield processes
    finally:
        for process in processes:
            await process.kill()


@POSTGRES_ONLY
@pytest.mark.parametrize("count", [2, 3])
async def test_processes_share_one_telegram_budget_and_answer_people_meanwhile(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, count: int
) -> None:
    """With 2 or 3 processes a 1,000-recipient broadcast reaches everyone, Telegram never sees
    more than the budget in a second, one process polls, and a person writing to the bot during
    the broadcast is answered."""
    ids = await _people(db, telegram_sim, 1000)
    talker = Person(telegram_sim, 42, "Talker")
    async with _cluster(count, tmp_path, [db.url], telegram_sim) as processes:
        message_id = await _broadcast(db, tmp_path, ids)
        await telegram_sim.wait_for_sends(200, timeout=60)
        started = time.monotonic()
        reply = await talker.say("/help")
        answered_in = time.monotonic() - started
        await wait_until(lambda: _all_success(db, message_id, 1000), within=90, what="delivered")
        logs = "\n".join(line for p in processes for line in p.log)
    assert "Commands" in (reply.text or "") or reply.text
    assert answered_in < 5, f"the reply took {answered_in:.1f}s during the broadcast"
    assert telegram_sim.max_per_window(1.0) <= BUDGET
    assert len(telegram_sim.sends) >= 1000
    assert "Conflict" not in logs and "Traceback" not in logs


@POSTGRES_ONLY
@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_kill_9_of_the_telegram_leader_hands_over_within_the_ttl(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, mode: str
) -> None:
    """The Telegram leader killed mid-broadcast: another process takes over within TTL + 3 s,
    every delivery ends success, duplicates stay within what was in flight, and (webhook mode)
    every update people sent meanwhile is answered."""
    ids = await _people(db, telegram_sim, 600)
    extra = {"telegram_mode": mode}
    each: list[dict[str, str]] | None = None
    if mode == "webhook":
        # Telegram posts to one address (a load balancer's): here the second process, which
        # stores what it receives whoever leads.
        ports = [str(free_port()), str(free_port())]
        extra["telegram_webhook_secret"] = "failover-secret"
        extra["telegram_webhook_url"] = f"http://127.0.0.1:{ports[1]}/telegram/webhook"
        each = [{"port": port} for port in ports]
    async with _cluster(2, tmp_path, [db.url], telegram_sim, each=each, **extra) as processes:
        leader = await _telegram_leader(processes)
        assert leader is processes[0]
        exported = await _metrics(leader)
        assert 'herald_role{role="all"} 1.0' in exported
        assert re.search(r'herald_leadership\{name="telegram:\w+"\} 1\.0', exported)
        message_id = await _broadcast(db, tmp_path, ids)
        await telegram_sim.wait_for_sends(150, timeout=60)
        await leader.kill()
        killed_at = time.monotonic()
        people = [Person(telegram_sim, 900 + i, f"Writer {i}") for i in range(5)]
        await asyncio.gather(*(telegram_sim.send_text(p.user_id, "/help") for p in people))
        await wait_until(lambda: _all_success(db, message_id, 600), within=90, what="delivered")
        takeover = next(stamp for stamp, _, _ in telegram_sim.sends if stamp > killed_at)
        for person in people:
            await telegram_sim.wait_for_messages(person.user_id, 1, timeout=30)
    assert takeover - killed_at <= TTL + 3, f"took {takeover - killed_at:.1f}s"
    in_flight = 50 * 2
    replies = len(people)  # the answers to /help are sends too
    assert len(telegram_sim.sends) - replies - 600 <= in_flight
    # Sent after the kill, each reaches only the new leader: answered once, none twice.
    assert [len(telegram_sim.messages_to(p.user_id)) for p in people] == [1] * len(people)


@POSTGRES_ONLY
async def test_sigterm_of_the_leader_hands_over_without_waiting_for_the_ttl(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A leader stopped cleanly resigns and tells the others: the broadcast goes on within a
    second or two, not after the TTL, and nothing is sent twice."""
    ids = await _people(db, telegram_sim, 600)
    async with _cluster(
        2,
        tmp_path,
        [db.url],
        telegram_sim,
        leadership_ttl_seconds="20",
        leadership_renew_seconds="3",
    ) as processes:
        leader = await _telegram_leader(processes)
        assert leader is not None
        message_id = await _broadcast(db, tmp_path, ids)
        await telegram_sim.wait_for_sends(150, timeout=60)
        assert await leader.terminate() == 0
        stopped_at = time.monotonic()
        await wait_until(lambda: _all_success(db, message_id, 600), within=90, what="delivered")
    resumed = next(stamp for stamp, _, _ in telegram_sim.sends if stamp > stopped_at)
    assert resumed - stopped_at < 5, f"{resumed - stopped_at:.1f}s without a leader"
    assert len(telegram_sim.sends) == 600


@POSTGRES_ONLY
async def test_cut_off_from_the_database_no_process_keeps_sending_and_all_recover(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Both processes lose PostgreSQL for 15 s mid-broadcast: Telegram sends stop within the
    TTL (nobody holds a valid leadership), and without a restart the broadcast completes."""
    ids = await _people(db, telegram_sim, 1500)
    url = make_url(db.url)
    proxies: list[TcpProxy] = []
    async with (
        tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as first,
        tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as second,
    ):
        proxies = [first, second]
        urls = [url.set(port=p.port).render_as_string(False) for p in proxies]
        async with _cluster(2, tmp_path, urls, telegram_sim):
            message_id = await _broadcast(db, tmp_path, ids)
            await telegram_sim.wait_for_sends(200, timeout=60)
            for proxy in proxies:
                await proxy.cut()
            cut_at = time.monotonic()
            await asyncio.sleep(15)  # the partition lasts this long (a duration)
            late = [stamp for stamp, _, _ in telegram_sim.sends if stamp > cut_at + TTL]
            for proxy in proxies:
                await proxy.restore()
            await db.engine.dispose()
            await wait_until(
                lambda: _all_success(db, message_id, 1500), within=120, what="delivered"
            )
    assert late == [], f"{len(late)} sends without a valid leadership"


@POSTGRES_ONLY
async def test_a_scheduled_message_fires_once_with_three_processes(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Three processes, one scheduled broadcast: each person gets it exactly once."""
    ids = await _people(db, telegram_sim, 20)
    async with _cluster(3, tmp_path, [db.url], telegram_sim):
        send_at = datetime.now(UTC) + timedelta(seconds=3)
        message_id = await _broadcast(db, tmp_path, ids, send_at=send_at)
        await wait_until(lambda: _all_success(db, message_id, 20), within=60, what="delivered")
    assert [len(telegram_sim.messages_to(FIRST_CHAT + i)) for i in range(20)] == [1] * 20


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_refuses_a_second_process_with_a_clear_message(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A second ``herald run`` on the same SQLite file exits at once, saying to use PostgreSQL;
    the first keeps running."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServiceProcess.for_simulator(tmp_path / "a", db.url, telegram_sim)
    second = ServiceProcess.for_simulator(tmp_path / "b", db.url, telegram_sim)
    await first.start()
    try:
        with pytest.raises(RuntimeError, match="exited"):
            await second.start()
        assert second.process is not None and await second.process.wait() != 0
        assert any("use PostgreSQL to run several" in line for line in second.log)
        assert "Traceback" not in "\n".join(second.log)
        assert (await _readiness(first))["status"] == "ready"
    finally:
        await first.kill()
        await second.kill()
