"""The operator's CLI for broadcasts and messages: attachments, scheduling, typology targets,
a progress display that moves while deliveries happen, and messages list/show/cancel."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from persistence.models import Customer
from sandbox.telegram_simulator import TelegramSimulator
from tests.cli_support import Herald
from tests.conftest import Database

ROME = timezone(timedelta(hours=1))


async def _customers(db: Database, count: int, *, email: bool = False) -> list[int]:
    async with db.sessions.begin() as session:
        records = [
            Customer(name=f"Person {n}", email=f"p{n}@example.org" if email else None)
            for n in range(count)
        ]
        session.add_all(records)
        await session.flush()
        return [r.id for r in records]


async def test_broadcast_with_attachment_subject_typologies_and_schedule(
    herald: Herald, db: Database, tmp_path: Path
) -> None:
    """--attach, --subject, --typology, --to typology:NAME and --send-at reach the message."""
    assert (await herald("typologies", "create", "customer", "Retail")).code == 0
    assert (await herald("typologies", "create", "message", "Notices")).code == 0
    for name in ("Anna", "Bruno"):
        args = ["recipients", "add", "--name", name, "--email", f"{name}@example.org"]
        assert (await herald(*args, "--typology", "Retail")).code == 0
    assert (await herald("recipients", "add", "--name", "Other", "--email", "o@x.org")).code == 0
    timetable = tmp_path / "../Orario dicembre.pdf"
    timetable.write_bytes(b"%PDF-1.4 timetable")
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    sent = await herald.json(
        "broadcast",
        "--channel",
        "storage",
        "--to",
        "typology:retail",
        "--subject",
        "Closed",
        "--typology",
        "Notices",
        "--body",
        "Closed on Friday",
        "--attach",
        str(timetable),
        "--send-at",
        when.astimezone(ROME).isoformat(),
    )
    assert sent["status"] == "scheduled"
    [message] = sent["messages"]
    assert message["counts"]["pending"] == 2
    shown = await herald.json("messages", "show", str(message["id"]))
    assert shown["subject"] == "Closed" and shown["typology_id"] is not None
    assert shown["send_at"] == when.isoformat().replace("+00:00", "Z")
    assert [(a["file_name"], a["size"]) for a in shown["attachments"]] == [
        ("Orario dicembre.pdf", 18)
    ]
    naive = await herald(
        "broadcast",
        "--channel",
        "storage",
        "--to",
        "customer:1",
        "--body",
        "x",
        "--send-at",
        "2026-12-24T09:00",
    )
    assert naive.code == 2 and "--send-at" in naive.err and "has no timezone" in naive.err
    nothing = await herald(
        "broadcast", "--channel", "storage", "--to", "typology:Nope", "--body", "x"
    )
    assert nothing.code == 1 and "no recipient typology named 'Nope'" in nothing.err


async def test_attachments_over_the_limit_are_refused_before_sending(
    herald: Herald, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attachment over MAX_ATTACHMENT_BYTES is refused naming the file and the setting."""
    monkeypatch.setenv("MAX_ATTACHMENT_BYTES", "10")
    [rid] = await _customers(db, 1, email=True)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 11)
    run = await herald(
        "broadcast",
        "--channel",
        "email",
        "--to",
        f"customer:{rid}",
        "--body",
        "x",
        "--attach",
        str(big),
    )
    assert run.code == 2 and f"--attach {big}: 11 bytes" in run.err
    assert "MAX_ATTACHMENT_BYTES" in run.err
    assert (await herald.json("messages", "list"))["items"] == []


async def test_broadcast_reports_what_could_not_be_sent(herald: Herald, db: Database) -> None:
    """Exit code 1 when a recipient has no address on the channel, or is not yours."""
    [with_email] = await _customers(db, 1, email=True)
    [without] = await _customers(db, 1)
    run = await herald(
        "broadcast",
        "--channel",
        "email",
        "--to",
        f"customer:{with_email},{without}",
        "--subject",
        "S",
        "--body",
        "x",
    )
    assert run.code == 1 and "1 of 2 deliveries not made: 1 invalid" in run.err
    refused = await herald(
        "broadcast", "--channel", "storage", "--to", "customer:999", "--body", "x"
    )
    assert refused.code == 1 and "customer:999" in refused.err


async def test_messages_list_show_and_cancel(herald: Herald, db: Database) -> None:
    """Scheduled messages are listed, cancelled once, and a missing one is 'not found'."""
    ids = await _customers(db, 3, email=True)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    to = f"customer:{','.join(map(str, ids))}"
    sent = await herald.json(
        "broadcast",
        "--channel",
        "email",
        "--to",
        to,
        "--subject",
        "Closing",
        "--body",
        "Later",
        "--send-at",
        later,
    )
    message_id = sent["messages"][0]["id"]
    listed = await herald.json("messages", "list", "--status", "scheduled")
    assert [m["id"] for m in listed["items"]] == [message_id]
    table = await herald("messages", "list", "--channel", "email")
    assert table.code == 0 and "Closing" in table.out and "scheduled" in table.out
    cancelled = await herald.json("messages", "cancel", str(message_id))
    assert cancelled["cancelled"] == [{"message_id": message_id, "cancelled": 3}]
    again = await herald("messages", "cancel", str(message_id), "99")
    assert again.code == 1
    assert f"message {message_id} is already cancelled" in again.err
    assert "message 99 not found" in again.err
    shown = await herald("messages", "show", str(message_id))
    assert shown.code == 0 and "cancelled=3" in shown.out
    missing = await herald("messages", "show", "99")
    assert (missing.code, missing.err.strip()) == (1, "herald: message 99 not found")


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="5151:progress-token") as simulator:
        yield simulator


async def test_wait_shows_progress_at_least_every_second_while_delivering(
    herald: Herald, db: Database, telegram_api: TelegramSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--wait on a pipe prints the counters at least once a second, and they move."""
    for name, value in {
        "TELEGRAM_BOT_TOKEN": telegram_api.token,
        "TELEGRAM_API_BASE_URL": telegram_api.base_url,
        "TELEGRAM_RATE_PER_SECOND": "15",
        "DISPATCH_BATCH_SIZE": "5",
    }.items():
        monkeypatch.setenv(name, value)
    chats = list(range(7001, 7046))
    for chat in chats:
        telegram_api.add_user(chat, f"P{chat}")
    async with db.sessions.begin() as session:
        session.add_all(Customer(name=f"P{chat}", telegram_chat_id=chat) for chat in chats)
    ids = await herald.json("recipients", "list", "--limit", "100")
    to = "customer:" + ",".join(str(r["id"]) for r in ids["items"])
    run = await herald(
        "broadcast", "--channel", "telegram", "--to", to, "--body", "Hi", "--wait", "--deliver"
    )
    assert run.code == 0, run
    lines = re.findall(r"\[\s*([\d.]+)s\] message \d+ \(telegram\): (\d+)/45 final", run.out)
    times = [float(t) for t, _ in lines]
    done = [int(d) for _, d in lines]
    assert times[-1] >= 2.0 and done[-1] == 45  # 45 at 15/s: about three seconds of sending
    assert all(b - a <= 1.6 for a, b in itertools.pairwise(times)), times
    assert len(set(done)) >= 3, done  # the counters moved while it waited
    assert len(telegram_api.messages_to(7001)) == 1
