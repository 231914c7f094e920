"""The bot when Telegram refuses a call: a refused command menu does not stop the service, and a
second process polling the same bot is reported in one line and in /readyz, not in a flood."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import Person, running_service, wait_until
from tests.conftest import Database, _create_postgres_database, _drop_postgres_database, _migrate
from tests.service_process import ServiceProcess


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="6262:failed-calls-token") as simulator:
        yield simulator


async def test_a_refused_command_menu_is_one_warning_and_the_bot_starts(
    db: Database, sim: TelegramSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """setMyCommands failing for every language: one warning, and the bot answers people."""
    sim.fail_next("setMyCommands", error_code=500, description="Internal Server Error", count=3)
    with caplog.at_level(logging.WARNING):
        async with running_service(db, sim, "polling"):
            reply = await Person(sim, 801, "Ida").say("/help")
    assert "/start" in (reply.text or "")
    menu = [r for r in caplog.records if "command menu" in r.getMessage()]
    assert len(menu) == 1 and menu[0].levelname == "WARNING"
    assert "default, en, it" in menu[0].getMessage()


async def _readiness(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.json()


@pytest.mark.slow
async def test_two_processes_polling_one_bot_are_reported_once_and_unready(
    db: Database, sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Two separate installations (each its own database, so nothing elects one poller) on the
    same token: each says so in one error line naming the cause, /readyz says why it is not
    ready, no tracebacks; when one stops, the other recovers."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    async with separate_database(db, tmp_path) as other_url:
        await _two_pollers(db.url, other_url, sim, tmp_path)


@asynccontextmanager
async def separate_database(db: Database, tmp_path: Path) -> AsyncIterator[str]:
    """A second migrated database of the same kind, dropped afterwards."""
    if db.backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
        await _migrate(url)
        yield url
        return
    url = await _create_postgres_database()
    try:
        await _migrate(url)
        yield url
    finally:
        await _drop_postgres_database(url)


async def _two_pollers(url: str, other_url: str, sim: TelegramSimulator, tmp_path: Path) -> None:
    first = ServiceProcess.for_simulator(tmp_path / "a", url, sim)
    second = ServiceProcess.for_simulator(tmp_path / "b", other_url, sim)
    await first.start()
    try:
        assert first.port is not None
        await wait_until(lambda: _ready(first.port), what="the first service is ready")
        polls_before = sim.received_count["getUpdates"]
        await second.start()
        assert second.port is not None

        async def both_unready() -> bool:
            return not await _ready(first.port) and not await _ready(second.port)

        await wait_until(both_unready, within=20, what="both services see the conflict")
        await wait_until(
            lambda: _true(sim.received_count["getUpdates"] >= polls_before + 5),
            within=30,
            what="several rounds of conflicting polls",
        )
        status, body = await _readiness(first.port)
        assert status == 503 and body["checks"]["bot"] is False
        assert "409 Conflict" in body["reasons"]["bot"]
        for service in (first, second):
            conflicts = [line for line in service.log if "409 Conflict" in line]
            assert len(conflicts) == 1, service.log_tail()
            assert "ERROR" in conflicts[0] and "run one poller per token" in conflicts[0]
            assert not any("Traceback" in line for line in service.log), service.log_tail()
        assert await second.terminate() == 0
        await wait_until(lambda: _ready(first.port), within=45, what="the first recovers")
        assert any("polling for updates works again" in line for line in first.log)
        assert await first.terminate() == 0
    finally:
        await second.kill()
        await first.kill()


async def _ready(port: int | None) -> bool:
    assert port is not None
    status, _ = await _readiness(port)
    return status == 200


async def _true(value: bool) -> bool:
    return value
