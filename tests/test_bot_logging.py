"""Secrets never reach the logs, even from failing Telegram requests and their tracebacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from telegram import Bot
from telegram.error import NetworkError, TelegramError

from bot.logging_setup import REDACTED, RedactingFormatter
from sandbox.telegram_simulator import TelegramSimulator

TOKEN = "5555:redact-me-secret-token-value"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and up, formatted the way the service formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s", [TOKEN]))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_failing_requests_never_show_the_bot_token(captured: io.StringIO) -> None:
    """httpx and PTB log request URLs and errors; the token in them is always redacted."""
    log = logging.getLogger("herald.test")
    async with TelegramSimulator(token=TOKEN) as sim:
        bot = Bot(TOKEN, base_url=sim.base_url, base_file_url=sim.base_file_url)
        async with bot:  # getMe; PTB logs the API URL (with the token) at DEBUG
            sim.fail_next("sendMessage", error_code=502, description="Bad Gateway")
            with pytest.raises(TelegramError) as failed:
                await bot.send_message(1, "hello")
            log.error("send failed", exc_info=failed.value)
            await sim.stop()
            with pytest.raises(NetworkError) as unreachable:
                await bot.get_me()  # the server is gone
            log.error("Telegram unreachable", exc_info=unreachable.value)
    try:
        raise RuntimeError(f"GET {sim.base_url}{TOKEN}/getUpdates failed")
    except RuntimeError:
        log.exception("an error message that carries the URL")
    output = captured.getvalue()
    assert "sendMessage" in output and "Traceback" in output
    assert "bot" + REDACTED in output  # the URL was logged, with the token redacted
    assert TOKEN not in output
    assert "redact-me-secret" not in output
    assert TOKEN.replace(":", "%3A") not in output
