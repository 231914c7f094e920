"""Durable simulated people: a restarted Telegram simulator knows yesterday's users and chats."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from pathlib import Path

import pytest
import telegram
from telegram.error import Forbidden

from sandbox.telegram_simulator import TelegramSimulator
from sandbox.telegram_state import HISTORY_LIMIT
from tests.bot_support import wait_until

ANN = 1001
BOB = 1002


async def test_restarted_simulator_knows_the_same_people(tmp_path: Path) -> None:
    """Users, blocked state, both sides of the history and the id counters survive a restart."""
    path = tmp_path / "telegram.json"
    async with TelegramSimulator(state_path=path) as first:
        first.add_user(ANN, "Ann", username="ann", language_code="it")
        first.add_user(BOB, "Bob")
        last_update = await first.send_command(ANN, "/start")
        async with telegram.Bot(first.token, base_url=first.base_url) as bot:
            await bot.get_updates()
            welcome = await bot.send_message(ANN, "<b>Welcome</b>, Ann", parse_mode="HTML")
            document = await bot.send_document(ANN, io.BytesIO(b"%PDF"), filename="terms.pdf")
        await first.block_bot(BOB)
    assert document.document is not None

    async with TelegramSimulator(state_path=path) as second:
        assert second.has_user(ANN) and second.user(ANN).language_code == "it"
        assert second.chat(BOB).blocked
        history = second.history(ANN)
        assert [m.get("text") for m in history[:2]] == ["/start", "Welcome, Ann"]
        restored = second.messages_to(ANN)[0]
        assert restored.formatted("bold") == ["Welcome"] and restored.parse_mode == "HTML"
        assert await second.send_text(ANN, "hello again") > last_update
        async with telegram.Bot(second.token, base_url=second.base_url) as bot:
            news = await bot.send_message(ANN, "Today's broadcast")
            assert news.message_id > welcome.message_id + 1
            again = await bot.send_document(ANN, document.document.file_id)
            assert again.document is not None and again.document.file_name == "terms.pdf"
            with pytest.raises(Forbidden):
                await bot.send_message(BOB, "you blocked me yesterday")


async def test_saves_are_debounced_and_atomic(tmp_path: Path) -> None:
    """A burst of sends is saved within moments in a few writes, never one per message."""
    path = tmp_path / "telegram.json"
    async with TelegramSimulator(state_path=path) as sim:
        sim.add_user(ANN, "Ann")
        async with telegram.Bot(sim.token, base_url=sim.base_url) as bot:
            for n in range(60):
                await bot.send_message(ANN, f"message {n}")

        async def all_saved() -> bool:
            if not path.exists():
                return False
            chat = json.loads(path.read_text())["chats"][0]
            return len(chat["sent"]) == 60

        await wait_until(all_saved, within=5, what="the burst reached the state file")
        assert sim.state_writes < 12
    leftovers = [p.name for p in tmp_path.iterdir()]  # noqa: ASYNC240 - a tiny test directory
    assert leftovers == ["telegram.json"]  # no temporary files left behind


async def test_history_keeps_the_last_messages_of_each_chat(tmp_path: Path) -> None:
    """Only the newest messages of a chat are kept; message ids still continue after them."""
    path = tmp_path / "telegram.json"
    async with TelegramSimulator(state_path=path) as sim:
        sim.add_user(ANN, "Ann")
        async with telegram.Bot(sim.token, base_url=sim.base_url) as bot:
            for n in range(HISTORY_LIMIT + 10):
                await bot.send_message(ANN, f"m{n}")
            assert await bot.delete_message(ANN, HISTORY_LIMIT + 10)
    async with TelegramSimulator(state_path=path) as sim:
        kept = sim.messages_to(ANN)
        assert len(kept) == HISTORY_LIMIT and kept[0].text == "m10"
        assert kept[-1].deleted and sim.is_deleted(ANN, HISTORY_LIMIT + 10)
        async with telegram.Bot(sim.token, base_url=sim.base_url) as bot:
            assert (await bot.send_message(ANN, "next")).message_id == HISTORY_LIMIT + 11


async def test_changes_made_before_start_are_saved(tmp_path: Path) -> None:
    """Users added before the server starts (as `python -m sandbox.serve` does) are saved too."""
    path = tmp_path / "telegram.json"
    sim = TelegramSimulator(state_path=path)
    sim.add_user(ANN, "Ann")
    await sim.start()
    await sim.stop()
    assert TelegramSimulator(state_path=path).has_user(ANN)


@pytest.mark.parametrize(
    "content", ["{not json", '{"version": 99}', '{"version": 1, "users": "nobody"}', "\xff\xfe"]
)
async def test_corrupt_state_file_starts_empty_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    """An unusable state file is reported in one warning line; the simulator starts empty."""
    path = tmp_path / "telegram.json"
    path.write_bytes(content.encode("latin-1"))
    caplog.set_level(logging.WARNING, logger="sandbox.telegram_state")
    async with TelegramSimulator(state_path=path) as sim:
        assert sim.stats()["users"] == 0
        sim.add_user(ANN, "Ann")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
    assert TelegramSimulator(state_path=path).has_user(ANN)  # the broken file was replaced


async def test_unreadable_state_path_does_not_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A state path that cannot be read (a directory) is reported, and the simulator runs."""
    caplog.set_level(logging.WARNING, logger="sandbox.telegram_state")
    async with TelegramSimulator(state_path=tmp_path) as sim:
        sim.add_user(ANN, "Ann")
        assert sim.has_user(ANN)
    assert any("unreadable" in r.getMessage() for r in caplog.records)


async def test_simulator_process_keeps_its_people_in_the_state_file(tmp_path: Path) -> None:
    """`python -m sandbox.serve telegram --state FILE` saves its people when it is stopped."""
    path = tmp_path / "people.json"
    command = ["-m", "sandbox.serve", "telegram", "--users", "5000:3", "--state", str(path)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    ready = (await process.stdout.readline()).decode()
    control = (await process.stdout.readline()).decode()
    assert ready.startswith("READY http://127.0.0.1:") and control.startswith("CONTROL http")
    process.terminate()
    assert await process.wait() == 0
    sim = TelegramSimulator(state_path=path)
    assert [sim.has_user(5000 + n) for n in range(4)] == [True, True, True, False]
