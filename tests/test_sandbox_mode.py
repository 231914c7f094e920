"""Sandbox mode as a newcomer meets it: free ports and DATA_DIR/sandbox.json, two sandboxes side
by side, people who survive a restart, and `herald chat` riding out a sandbox that goes away."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.chat_client import Backoff, ChatClient, ChatOptions, SandboxUnreachableError
from bot.sandbox_mode import (
    SandboxInfo,
    SandboxNotRunningError,
    read_sandbox_info,
    write_sandbox_info,
)
from bot.settings import Settings, load_settings
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import wait_until
from tests.cli_support import Herald
from tests.conftest import Database
from tests.conftest import _migrate as migrate_database
from tests.service_process import ServiceProcess


def _sandbox(workdir: Path, database_url: str) -> ServiceProcess:
    """`herald run` with no token and no TELEGRAM_SANDBOX_PORT: every port is found free."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": database_url,
        "PORT": "0",
        "DATA_DIR": str(workdir / "data"),
        "TELEGRAM_BOT_TOKEN": "",
        "TELEGRAM_SANDBOX_PORT": "",
    }
    return ServiceProcess(workdir, env)


async def _info(workdir: Path) -> dict[str, Any]:
    """sandbox.json, once the service has written it (when it is fully up)."""
    path = workdir / "data" / "sandbox.json"

    async def written() -> bool:
        return path.exists()

    await wait_until(written, what=f"{path} is written")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


async def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        answer: dict[str, Any] = await response.json()
        return answer


async def _bot_messages(control_url: str, chat_id: int) -> list[str]:
    url = f"{control_url}/chats/{chat_id}/messages"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        answer = await response.json()
    return [str(m.get("text", "")) for m in answer.get("messages", [])]


async def test_two_sandboxes_run_side_by_side_and_clean_up_their_files(
    db: Database, tmp_path: Path
) -> None:
    """Two sandboxes with their own DATA_DIR take free ports and write sandbox.json; a third on
    a busy DATA_DIR is refused in one line; a clean stop removes the file."""
    second_url = db.url
    if db.backend == "sqlite":  # SQLite runs one Herald process: the second has its own file
        second_url = f"sqlite+aiosqlite:///{tmp_path / 'second.db'}"
        await migrate_database(second_url)
    first, second = _sandbox(tmp_path / "one", db.url), _sandbox(tmp_path / "two", second_url)
    await first.start()
    try:
        await second.start()
        one, two = await _info(tmp_path / "one"), await _info(tmp_path / "two")
        assert one["control_url"] != two["control_url"] and one["api_url"] != two["api_url"]
        assert first.process is not None and one["pid"] == first.process.pid
        async with aiohttp.ClientSession() as http:
            for info in (one, two):
                async with http.get(f"{info['api_url']}/healthz") as response:
                    assert response.status == 200
        env = {"DATABASE_URL": db.url, "PORT": "0", "DATA_DIR": "data", "TELEGRAM_BOT_TOKEN": ""}
        busy = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path / "one",
            env={**os.environ, **env},
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(busy.communicate(), 60)
        assert busy.returncode == 2, err
        assert f"another Herald sandbox (process {one['pid']}" in err.decode()
        assert await second.terminate() == 0
        assert not (tmp_path / "two" / "data" / "sandbox.json").exists()
    finally:
        await second.kill()
        await first.kill()


async def test_a_person_registered_before_a_restart_gets_the_next_broadcast(
    db: Database, tmp_path: Path, herald: Herald
) -> None:
    """Register in the sandbox, restart `herald run`: the simulated person is still there and
    today's broadcast reaches them."""
    ada = await herald.json("recipients", "add", "--name", "Ada", "--phone", "+393331234567")
    service = _sandbox(tmp_path / "svc", db.url)
    await service.start()
    try:
        control = (await _info(tmp_path / "svc"))["control_url"]
        await _post(f"{control}/users", {"user_id": 4001, "first_name": "Ada"})
        await _post(f"{control}/users/4001/contact", {"phone_number": "393331234567"})

        async def registered() -> bool:
            return any("registered as Ada" in t for t in await _bot_messages(control, 4001))

        await wait_until(registered, what="Ada is registered")
        assert await service.terminate() == 0
        state = tmp_path / "svc" / "data" / "sandbox-telegram.json"
        assert state.exists()
        service = _sandbox(tmp_path / "svc", db.url)
        await service.start()
        control = (await _info(tmp_path / "svc"))["control_url"]
        to = f"customer:{ada['id']}"
        sent = await herald(
            "broadcast", "--channel", "telegram", "--to", to, "--body", "Today",
            "--wait", "--idle-timeout", "20",
        )  # fmt: skip
        assert sent.code == 0, sent
        assert "Today" in await _bot_messages(control, 4001)
        assert await service.terminate() == 0
    finally:
        await service.kill()


@pytest.fixture
def chat_settings(tmp_path: Path) -> Settings:
    return load_settings(_env_file=None, data_dir=tmp_path / "data")


def test_chat_explains_a_missing_or_stale_sandbox(chat_settings: Settings) -> None:
    """No sandbox.json, or one whose process is gone: a clear message saying what to do."""
    with pytest.raises(SandboxNotRunningError, match="no sandbox is running with DATA_DIR="):
        read_sandbox_info(chat_settings)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_sandbox_info(chat_settings, SandboxInfo("http://127.0.0.1:9/_sim", "http://x", dead.pid))
    with pytest.raises(SandboxNotRunningError, match=f"stale \\(process {dead.pid} is not"):
        read_sandbox_info(chat_settings)


class Terminal:
    """What the chat client printed, with a way to wait for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self.typed: asyncio.Queue[str | None] = asyncio.Queue()

    def write(self, text: str) -> None:
        self.lines.append(text)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, fragment: str, within: float = 15) -> None:
        async with self._changed, asyncio.timeout(within):
            await self._changed.wait_for(lambda: any(fragment in line for line in self.lines))

    async def read_line(self) -> str | None:
        return await self.typed.get()


@pytest.fixture
async def first_sim(tmp_path: Path) -> AsyncIterator[TelegramSimulator]:
    simulator = TelegramSimulator(state_path=tmp_path / "state.json")
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_chat_reconnects_with_backoff_when_the_sandbox_restarts(
    chat_settings: Settings, first_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """The sandbox stops and comes back on another port: one line when lost, one when back,
    a bounded number of attempts meanwhile, the person joined again and messages flowing."""
    write_sandbox_info(chat_settings, SandboxInfo(first_sim.control_url, "-", os.getpid()))

    def locate() -> str:
        try:
            return read_sandbox_info(chat_settings).control_url
        except SandboxNotRunningError as exc:
            raise SandboxUnreachableError(str(exc)) from None

    terminal = Terminal()
    options = ChatOptions(locate(), user_id=5005, first_name="Remo")
    async with aiohttp.ClientSession() as http:
        client = ChatClient(
            options, http, terminal.read_line, terminal.write, locate=locate,
            backoff=Backoff(initial=0.05, cap=0.4),
        )  # fmt: skip
        session = asyncio.create_task(client.run())
        await terminal.wait_for("You are Remo")
        await first_sim.stop()
        (tmp_path / "data" / "sandbox.json").unlink()
        await terminal.wait_for("lost the sandbox")
        await wait_until(lambda: _at_least(client, 3), what="a few reconnection attempts")
        second = TelegramSimulator(state_path=tmp_path / "state.json")
        await second.start()
        try:
            write_sandbox_info(chat_settings, SandboxInfo(second.control_url, "-", os.getpid()))
            await terminal.wait_for(f"back: connected to the sandbox at {second.control_url}")
            assert second.has_user(5005)
            await _bot_says(second, 5005, "welcome back to you")
            await terminal.wait_for("bot> welcome back to you")
            await terminal.typed.put("/quit")
            await asyncio.wait_for(session, 10)
        finally:
            await second.stop()
    assert sum("lost the sandbox" in line for line in terminal.lines) == 1
    assert sum("back: connected" in line for line in terminal.lines) == 1
    assert client.reconnect_attempts < 40  # backoff, not a busy loop


async def _at_least(client: ChatClient, attempts: int) -> bool:
    return client.reconnect_attempts >= attempts


async def _bot_says(sim: TelegramSimulator, chat_id: int, text: str) -> None:
    url = f"{sim.base_url}{sim.token}/sendMessage"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"chat_id": chat_id, "text": text}) as response,
    ):
        assert response.status == 200, await response.text()
