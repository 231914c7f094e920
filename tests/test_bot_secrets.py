"""No secret on any output: the real ``herald`` in a subprocess, logging at DEBUG, against a Bot
API that refuses the token or hands back a webhook URL that contains it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.logging_setup import REDACTED, Redactor
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database

TOKEN = "5151:the-real-secret-part-of-this-token"
SECRET_PART = TOKEN.partition(":")[2]
WEBHOOK_SECRET = "webhook-shared-secret"


def _leaks(text: str, secrets: tuple[str, ...]) -> list[str]:
    forms = {form for s in secrets for form in (s, quote(s, safe=""), quote(s))}
    return sorted(form for form in forms if form in text)


async def _herald(*command: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *command,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "LOG_LEVEL": "DEBUG", "PORT": "0", **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace") + err.decode(errors="replace")


@pytest.mark.parametrize("command", [("run",), ("webhook", "info")])
async def test_a_refused_token_is_never_printed(
    db: Database, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`herald run` and `herald webhook info` with a token Telegram refuses: exit 2, one line
    naming TELEGRAM_BOT_TOKEN, and neither the token nor its secret part anywhere (DEBUG on)."""
    async with TelegramSimulator(token="5151:the-token-telegram-knows") as sim:
        code, output = await _herald(
            *command,
            env={
                "DATABASE_URL": db.url,
                "DATA_DIR": str(tmp_path / "data"),
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_BASE_URL": sim.base_url,
            },
            cwd=tmp_path,
        )
    assert code == 2, output
    assert output.strip().splitlines()[-1].startswith("herald: Telegram refused TELEGRAM_BOT_TOKEN")
    assert "Traceback" not in output
    assert not _leaks(output, (TOKEN, SECRET_PART)), output


async def test_webhook_info_redacts_a_secret_in_the_url(tmp_path: Path) -> None:
    """A webhook URL carrying the token or the webhook secret is shown with them redacted."""
    async with TelegramSimulator(token=TOKEN) as sim:
        env = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": sim.base_url,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DATA_DIR": str(tmp_path / "data"),
        }
        url = f"https://herald.example.org/hook/{SECRET_PART}/{WEBHOOK_SECRET}"
        code, output = await _herald("webhook", "set", "--url", url, env=env, cwd=tmp_path)
        assert code == 0, output
        assert not _leaks(output, (TOKEN, SECRET_PART, WEBHOOK_SECRET)), output
        code, output = await _herald("webhook", "info", env=env, cwd=tmp_path)
    assert code == 0, output
    assert f"url: https://herald.example.org/hook/{REDACTED}/{REDACTED}" in output
    assert not _leaks(output, (TOKEN, SECRET_PART, WEBHOOK_SECRET)), output


def test_the_redactor_covers_every_form_of_a_secret() -> None:
    """The token whole, its secret part alone and URL-encoded forms are all replaced."""
    redact = Redactor([TOKEN, "p@ss word"])
    text = (
        f"{TOKEN} {SECRET_PART} {quote(TOKEN, safe='')} bot9999:{SECRET_PART} "
        f"{quote('p@ss word')} p@ss word"
    )
    cleaned = redact(text)
    assert not _leaks(cleaned, (TOKEN, SECRET_PART, "p@ss word")), cleaned
    assert cleaned.count(REDACTED) == 6 and cleaned.startswith(REDACTED + " ")
