"""The admin commands of the CLI: import recipients from CSV, presend and broadcast with a
progress bar until delivered, show a message; and waiting with no service running."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import cli
from persistence.models import Customer
from tests.conftest import Database


@pytest.fixture(autouse=True)
def _cli_env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reconfigures the root logger; keep pytest's logging. Point it at the test DB."""
    monkeypatch.setattr(cli, "configure_logging", lambda *_args: None)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_MODE", "SMTP_HOST", "SKEBBY_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")


async def _herald(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, list(argv))


async def _customer_ids(db: Database) -> str:
    async with db.sessions() as session:
        ids = (await session.execute(select(Customer.id).order_by(Customer.id))).scalars()
        return ",".join(str(i) for i in ids)


async def test_import_broadcast_wait_and_show(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Import two people, plan, broadcast to the inbox and watch it finish, then show it."""
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("name,phone\nNina,333 123 4567\nUgo,12\nEva,3337654321\n")
    assert await _herald("recipients", "import", str(csv_file), "--kind", "customer") == 1
    out = capsys.readouterr().out
    assert "created 2, updated 0, unchanged 0, rejected 1" in out
    # The table's columns are as wide as the ids in it, which grow on PostgreSQL.
    assert re.search(r"│ 3 +│ rejected │ +│ sms: '12' is not a valid phone number", out)
    to = ["--to", f"customer:{await _customer_ids(db)}"]
    base = ["broadcast", "--channel", "storage", "--channel", "sms", *to, "--body", "Hi"]
    assert await _herald(*base, "--presend") == 0
    assert "Presend: 2 recipients" in capsys.readouterr().out
    assert await _herald(*base, "--wait", "--deliver") == 0
    out = capsys.readouterr().out
    ids = sorted({int(i) for i in re.findall(r"message (\d+) \(", out)})
    assert len(ids) == 2 and "success=2" in out
    assert await _herald("messages", "show", str(ids[0])) == 0
    shown = capsys.readouterr().out
    assert "success=2" in shown and "customer:" in shown


async def test_wait_without_a_service_says_so(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing delivering, --wait stops after the idle timeout and explains why."""
    csv_file = tmp_path / "one.csv"
    csv_file.write_text("name\nNina\n")
    assert await _herald("recipients", "import", str(csv_file)) == 0
    argv = ["broadcast", "--channel", "storage", "--body", "Hi"]
    argv += ["--to", f"customer:{await _customer_ids(db)}"]
    assert await _herald(*argv, "--wait", "--idle-timeout", "0.2") == 1
    assert "is `herald run` up?" in capsys.readouterr().err
    assert await _herald(*argv, "--as", "nobody") == 1
    assert "no active user named 'nobody'" in capsys.readouterr().err
    assert await _herald("messages", "show", "999999") == 1
    assert "message 999999 not found" in capsys.readouterr().err
