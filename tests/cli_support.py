"""Running the real ``herald`` command line (``bot.cli.main``) against the test database."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import cli


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Herald:
    """``await herald("recipients", "list")``: one CLI run, its exit code and its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    async def __call__(self, *argv: str) -> Run:
        self._capsys.readouterr()  # what earlier steps printed is not this run's
        code = await asyncio.to_thread(cli.main, list(argv))
        captured = self._capsys.readouterr()
        return Run(code, captured.out, captured.err)

    async def json(self, *argv: str, code: int = 0) -> Any:
        run = await self(*argv, "--json")
        assert run.code == code, run
        return run.json()


def configure(
    monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path, **settings: str
) -> None:
    """The CLI's environment: the test database, sandbox mode, nothing from a stray .env."""
    monkeypatch.setattr(cli, "configure_logging", lambda *_args: None)  # keep pytest's logging
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_MODE", "SMTP_HOST", "SKEBBY_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(data_dir.parent)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("COLUMNS", "200")
    for name, value in settings.items():
        monkeypatch.setenv(name.upper(), value)
