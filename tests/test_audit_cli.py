"""The audit log from the command line: what ``herald`` commands do is recorded as the command
line (the ``--as`` user, or the operating system's user), and ``herald audit list`` reads it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from persistence.audit import os_user
from tests.cli_support import Herald
from tests.conftest import Database
from tests.test_audit_api import audit_text

PASSWORD = "a long enough secret"
NEW_PASSWORD = "another long secret"


async def test_cli_actions_are_recorded_and_listed_without_secrets(
    herald: Herald, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys, users, recipients, imports, broadcasts and cancels each leave a row; keys and
    passwords appear nowhere in the log."""
    key = (await herald.json("keys", "create", "alice", "--superuser"))["key"]
    listed = (await herald.json("keys", "list"))["keys"]
    assert (await herald("keys", "revoke", listed[0]["prefix"])).code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert (await herald("users", "create", "bob", "--password-stdin")).code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_PASSWORD + "\n"))
    assert (await herald("users", "set-password", "bob", "--password-stdin")).code == 0
    ada = (await herald.json("recipients", "add", "--name", "Ada", "--email", "a@example.org"))[
        "id"
    ]
    assert (await herald("recipients", "update", str(ada), "--note", "VIP")).code == 0
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("name,email\nBruno,b@example.org\n", encoding="utf-8")
    assert (await herald("recipients", "import", str(csv_file))).code == 0
    sent = await herald.json(
        "broadcast", "--channel", "storage", "--to", f"customer:{ada}", "--body", "Hi"
    )
    message = sent["messages"][0]["id"]
    assert (await herald("messages", "cancel", str(message))).code == 0
    assert (await herald("recipients", "delete", str(ada))).code == 0

    events = list(reversed((await herald.json("audit", "list"))["items"]))
    assert [e["action"] for e in events] == [
        "user.created",
        "api_key.created",
        "api_key.revoked",
        "user.created",
        "user.password_changed",
        "recipient.created",
        "recipient.updated",
        "recipients.imported",
        "broadcast.sent",
        "broadcast.cancelled",
        "recipient.deleted",
    ]
    assert {e["actor_kind"] for e in events} == {"cli"}
    assert all(f"os user {os_user()}" in e["user_agent"] for e in events)
    # Commands without --as name the operating system's user; the others the user acting.
    assert events[0]["actor_label"] == events[4]["actor_label"] == os_user()
    assert {e["actor_label"] for e in events[5:]} == {"cli"}
    assert events[1]["detail"]["prefix"] == listed[0]["prefix"] == key[:11]
    assert events[9]["subject_ids"] == [str(message)]

    text = await audit_text(db)
    for secret in (key, key[11:], PASSWORD, NEW_PASSWORD):
        assert secret not in text


async def test_audit_list_filters_and_refuses_someone_not_a_superuser(herald: Herald) -> None:
    """--action and --subject narrow the list; acting as a plain user ends with exit code 1."""
    assert (await herald("recipients", "add", "--name", "Ada")).code == 0
    assert (await herald("recipients", "add", "--name", "Bea")).code == 0
    assert (await herald("keys", "create", "clerk")).code == 0
    created = await herald.json("audit", "list", "--action", "recipient.created")
    assert len(created["items"]) == 2
    first = created["items"][-1]["subject_ids"][0]
    one = await herald.json("audit", "list", "--subject", f"customer:{first}")
    assert [e["action"] for e in one["items"]] == ["recipient.created"]
    future = await herald.json("audit", "list", "--since", "2999-01-01T00:00Z")
    assert future["items"] == []
    refused = await herald("audit", "list", "--as", "clerk")
    assert refused.code == 1 and "superuser" in refused.err
    table = await herald("audit", "list")
    assert table.code == 0 and "recipient.created" in table.out
    assert (await herald("audit", "list", "--help")).out.count("example") >= 1
