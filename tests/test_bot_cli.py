"""The command line a newcomer uses around the bot: recipients, webhook, and the chat client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from bot import cli
from bot.chat_client import ChatClient, ChatOptions
from bot.runner import Service
from persistence.models import Customer
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import running_service
from tests.conftest import Database


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4747:cli-test-token") as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reconfigures the root logger; keep pytest's logging as it is."""
    monkeypatch.setattr(cli, "configure_logging", lambda *_args: None)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_MODE", "TELEGRAM_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)


async def test_recipients_add_creates_a_recipient_to_register_against(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald recipients add` stores the number in E.164; a bad number is refused."""
    monkeypatch.setenv("DATABASE_URL", db.url)
    argv = ["recipients", "add", "--name", "Nina", "--phone", "333 123 4567"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    assert "+393331234567" in capsys.readouterr().out
    bad = ["recipients", "add", "--name", "X", "--phone", "12"]
    assert await asyncio.to_thread(cli.main, bad) == 2
    unknown_kind = ["recipients", "add", "--kind", "robot", "--name", "X", "--phone", "3331234567"]
    assert await asyncio.to_thread(cli.main, unknown_kind) == 2
    async with db.sessions() as session:
        stored = list(await session.execute(select(Customer.name, Customer.sms)))
    assert [tuple(row) for row in stored] == [("Nina", "+393331234567")]


async def test_webhook_commands_set_show_and_delete_the_webhook(
    sim: TelegramSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald webhook set|info|delete` drive the Bot API's webhook settings."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", sim.token)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", sim.base_url)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "cli-secret")
    url = "https://herald.example.org/telegram/webhook"
    assert await asyncio.to_thread(cli.main, ["webhook", "set", "--url", url]) == 0
    assert await asyncio.to_thread(cli.main, ["webhook", "info"]) == 0
    assert f"url: {url}" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["webhook", "delete"]) == 0
    assert await asyncio.to_thread(cli.main, ["webhook", "info"]) == 0
    assert "url: (none: polling)" in capsys.readouterr().out


class ScriptedTerminal:
    """Types each line once the previous answer has been printed."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = list(script)
        self.output: list[str] = []
        self._printed = asyncio.Condition()
        self._expect: str | None = None

    def write(self, text: str) -> None:
        self.output.append(text)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._printed:
            self._printed.notify_all()

    async def read_line(self) -> str | None:
        if self._expect is not None:
            expected = self._expect
            async with self._printed, asyncio.timeout(5):
                await self._printed.wait_for(lambda: expected in "\n".join(self.output))
        if not self.script:
            return None
        line, self._expect = self.script.pop(0)
        return line


async def test_chat_client_lets_a_person_register_from_the_terminal(
    db: Database, sim: TelegramSimulator
) -> None:
    """`herald chat`: /start shows the button, /contact registers, texts are echoed."""
    async with db.sessions.begin() as session:
        session.add(Customer(name="Olga", sms="+393331112222"))
    terminal = ScriptedTerminal(
        [
            ("/start", "[button: 📱 Share my phone number] (type /contact)"),
            ("/contact-of +393330000000", "someone else's contact"),
            ("/contact", "registered as Olga"),
            ("hello office", "bot> hello office"),
            ("/quit", ""),
        ]
    )
    options = ChatOptions(sim.control_url, user_id=4321, first_name="Olga", phone="+393331112222")
    service: Service
    async with running_service(db, sim, "polling") as service, aiohttp.ClientSession() as http:
        assert service.application is not None
        client = ChatClient(options, http, terminal.read_line, terminal.write)
        await asyncio.wait_for(client.run(), timeout=15)
    assert "You are Olga" in terminal.output[0]
