"""``herald templates`` and ``herald broadcast --template|--test`` from the shell: the same
templates, versions, owner rules and test sends as the API; ``herald users set-email`` and
``link-code`` for the user's own addresses."""

from __future__ import annotations

from sqlalchemy import select

from persistence.models import Message, TelegramLinkCode, User
from tests.cli_support import Herald
from tests.conftest import Database


async def _template(herald: Herald, name: str = "Office closed") -> dict[str, object]:
    created: dict[str, object] = await herald.json(
        "templates",
        "create",
        name,
        "--subject",
        "Office closed",
        "--body",
        "The office is closed on Friday.",
        "--channel-body",
        "sms=Closed Friday",
    )
    return created


async def test_create_show_update_list_and_delete(herald: Herald) -> None:
    """A template is created at version 1, updated to version 2, its first version still shown,
    found by a search, and deleted."""
    created = await _template(herald)
    assert created["current_version"] == 1
    assert created["per_channel"]["sms"]["body"] == "Closed Friday"  # type: ignore[index]
    updated = await herald.json("templates", "update", "Office closed", "--body", "Closed.")
    assert updated["current_version"] == 2 and updated["subject"] == "Office closed"
    first = await herald.json("templates", "show", str(created["id"]), "--version", "1")
    assert first["body"] == "The office is closed on Friday."
    assert [v["version"] for v in first["versions"]] == [1, 2]
    listed = await herald.json("templates", "list", "--search", "office")
    assert [t["name"] for t in listed["items"]] == ["Office closed"]
    shown = await herald("templates", "show", "Office closed")
    assert shown.code == 0 and "version 2 of 2" in shown.out
    await herald.json("templates", "delete", "Office closed")
    missing = await herald("templates", "show", "Office closed")
    assert missing.code == 1 and "not found" in missing.err


async def test_bad_input_is_refused_with_the_option_named(herald: Herald) -> None:
    """An unknown channel in --channel-body, bad markup and a duplicate name are refused."""
    bad = await herald("templates", "create", "X", "--body", "x", "--channel-body", "fax=hi")
    assert bad.code == 2 and "--channel-body" in bad.err
    markup = await herald("templates", "create", "X", "--body", "<b>open", "--format", "html")
    assert markup.code == 1 and "body:" in markup.err
    await _template(herald)
    again = await herald("templates", "create", "office closed", "--body", "x")
    assert again.code == 1 and "already have a template" in again.err


async def test_another_users_template_is_not_found(herald: Herald, db: Database) -> None:
    """A template made by one user is not found by another (not a superuser)."""
    async with db.sessions.begin() as session:
        session.add(User(username="maria", is_superuser=False))
        session.add(User(username="luca", is_superuser=False))
    await herald.json("templates", "create", "Mine", "--body", "hello", "--as", "maria")
    other = await herald("templates", "show", "Mine", "--as", "luca")
    assert other.code == 1 and "not found" in other.err
    assert (await herald.json("templates", "list", "--as", "luca"))["items"] == []


async def test_broadcast_from_a_template_records_it(herald: Herald, db: Database) -> None:
    """`broadcast --template NAME` sends the template's text (SMS its own) and the messages
    name the template and its version; --body replaces the template's text."""
    created = await _template(herald)
    ada = await herald.json(
        "recipients", "add", "--name", "Ada", "--email", "a@x.org", "--phone", "+393331234567"
    )
    sent = await herald.json(
        "broadcast",
        "--channel",
        "email,sms",
        "--to",
        f"customer:{ada['id']}",
        "--template",
        "Office closed",
    )
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(Message).where(Message.broadcast_id == sent["broadcast_id"])
            )
        ).scalars()
        by_channel = {m.channel: m for m in rows}
    assert by_channel["email"].body == "The office is closed on Friday."
    assert by_channel["sms"].body == "Closed Friday"
    assert {(m.template_id, m.template_version) for m in by_channel.values()} == {
        (created["id"], 1)
    }
    edited = await herald.json(
        "broadcast",
        "--channel",
        "email",
        "--to",
        f"customer:{ada['id']}",
        "--template",
        str(created["id"]),
        "--template-version",
        "1",
        "--body",
        "Closed on Monday too.",
    )
    async with db.sessions() as session:
        message = (
            await session.execute(
                select(Message).where(Message.broadcast_id == edited["broadcast_id"])
            )
        ).scalar_one()
    assert message.body == "Closed on Monday too." and message.subject == "Office closed"


async def test_a_test_send_goes_to_my_own_address_and_link_codes_are_one_time(
    herald: Herald, db: Database
) -> None:
    """`broadcast --test` queues the draft to the acting user's email only, marked as a test,
    and reports Telegram skipped; `users link-code` stores only the code's hash."""
    noaddress = await herald(
        "broadcast", "--test", "--channel", "email", "--body", "x", "--subject", "s"
    )
    assert noaddress.code == 1 and "no email address" in noaddress.out
    await herald.json("users", "set-email", "cli", "cli@example.org")
    bad = await herald("users", "set-email", "cli", "not-an-email")
    assert bad.code == 2
    await _template(herald)
    tested = await herald.json(
        "broadcast", "--test", "--channel", "email,telegram", "--template", "Office closed"
    )
    assert [m["channel"] for m in tested["messages"]] == ["email"]
    assert [s["channel"] for s in tested["skipped"]] == ["telegram"]
    async with db.sessions() as session:
        message = await session.get(Message, tested["messages"][0]["id"])
        assert message is not None and message.is_test
        assert message.subject == "[TEST] Office closed"
    assert (await herald.json("broadcasts", "list"))["items"] == []
    refused = await herald(
        "broadcast", "--test", "--channel", "email", "--to", "customer:1", "--body", "x"
    )
    assert refused.code == 2 and "--test" in refused.err
    code = await herald.json("users", "link-code", "cli")
    assert len(code["code"]) == 8 and code["expires_in_minutes"] == 10
    async with db.sessions() as session:
        stored = (await session.execute(select(TelegramLinkCode.code_hash))).scalars().all()
    assert len(stored) == 1 and code["code"] not in stored[0]
