"""The console's templates, its template picker on the send page, "Send me a test" and "My
addresses" (email, the one-time Telegram link code), over the aiohttp test client on both
databases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from persistence.models import Message, TelegramLinkCode, User
from persistence.template_queries import get_template, update_template
from tests.conftest import Database
from tests.console_support import Console, running_console
from tests.factories import make_customers
from tests.test_console_pages import _compose, _owner_of

TEMPLATE = re.compile(r"/templates/(\d+)")


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(db, tmp_path) as running:
        yield running


def _fields(**values: str) -> dict[str, str]:
    return {
        "name": "Office closed",
        "subject": "Office closed",
        "body": "The office is closed on Friday.",
        "format": "text",
        "sms_body": "Closed Friday",
    } | values


async def test_templates_are_made_edited_into_versions_and_deleted(console: Console) -> None:
    """A template saved from the console is listed; saving an edit makes version 2 while
    version 1 stays readable; another user gets a 404; deleting removes it."""
    alice = await console.user("alice")
    created = await alice.post("/templates", _fields())
    match = TEMPLATE.search(created.url)
    assert match and created.has("Template Office closed saved.")
    tid = match.group(1)
    listed = await alice.get("/templates")
    assert listed.has("Office closed") and f"/send?template={tid}" in listed.text
    saved = await alice.post(f"/templates/{tid}", _fields(body="Closed all week."))
    assert saved.has("Saved as version 2.")
    first = await alice.get(f"/templates/{tid}?version=1")
    assert first.has("The office is closed on Friday.") and first.has("Version 1 of 2.")
    bob = await console.user("bob")
    assert (await bob.get(f"/templates/{tid}")).status == 404
    assert not (await bob.get("/templates")).has("Office closed")
    blank = await alice.post("/templates", _fields(name="Other", body=" "))
    assert blank.status == 422 and 'id="error-body"' in blank.text
    gone = await alice.post(f"/templates/{tid}/delete", {})
    assert gone.has("Template deleted")
    assert (await alice.get(f"/templates/{tid}")).status == 404


async def test_a_template_fills_the_send_form_and_the_broadcast_records_it(
    console: Console,
) -> None:
    """/send?template=ID fills the form without JavaScript; sent unchanged, SMS gets the
    template's own text and every message names the template and its version."""
    alice = await console.user("alice")
    owner = await _owner_of(console, "alice")
    (c,) = await make_customers(
        console.api.db.sessions, 1, owner_id=owner, sms=lambda i: "+393331234567"
    )
    created = await alice.post("/templates", _fields())
    match = TEMPLATE.search(created.url)
    assert match
    tid = int(match.group(1))
    page = await alice.get(f"/send?template={tid}")
    assert page.has("The office is closed on Friday.") and 'name="template_id"' in page.text
    check = await alice.post(
        "/send/check",
        _compose(
            channels=["storage", "sms"],
            mode="ids",
            ids=str(c.id),
            template_id=str(tid),
            template_version="1",
            sms_body="",
        ),
    )
    assert check.status == 200, check.text[:2000]
    draft = re.search(r'name="draft" value="([^"]+)"', check.text)
    assert draft
    await alice.post("/send/confirm", {"draft": draft.group(1)})
    async with console.api.db.sessions() as session:
        rows = list((await session.execute(select(Message))).scalars())
    by_channel = {m.channel: m for m in rows}
    assert by_channel["sms"].body == "Closed Friday"
    assert by_channel["storage"].body == "The office is closed on Friday."
    assert {(m.template_id, m.template_version) for m in rows} == {(tid, 1)}


async def test_my_addresses_and_send_me_a_test(console: Console) -> None:
    """I save my email and get a one-time code (stored hashed) for /link; "Send me a test"
    queues the draft to my email only, marked as a test, and says Telegram was skipped."""
    alice = await console.user("alice")
    bad = await alice.post("/me/email", {"email": "not an email"})
    assert bad.status == 422
    saved = await alice.post("/me/email", {"email": "alice@example.org"})
    assert saved.has("Your email is saved.") and saved.has("alice@example.org")
    coded = await alice.post("/me/link-code", {})
    code = re.search(r"/link ([A-Z0-9]{8})", coded.text)
    assert code
    async with console.api.db.sessions() as session:
        hashes = list((await session.execute(select(TelegramLinkCode.code_hash))).scalars())
    assert len(hashes) == 1 and code.group(1) not in hashes[0]
    tested = await alice.post("/send/test", _compose(channels=["email", "telegram"]))
    assert tested.status == 200, tested.text[:2000]
    assert tested.has("Test queued to your own addresses: email.")
    assert tested.has("telegram skipped")
    async with console.api.db.sessions() as session:
        (message,) = (await session.execute(select(Message))).scalars()
    assert message.is_test and message.subject == "[TEST] Office closed"


async def test_a_console_edit_keeps_what_the_form_does_not_show(console: Console) -> None:
    """Editing a template in the console keeps the email HTML body and the other channels'
    own content set through the API; only the shared text and the SMS text change."""
    alice = await console.user("alice")
    created = await alice.post("/templates", _fields())
    match = TEMPLATE.search(created.url)
    assert match
    tid = int(match.group(1))
    async with console.api.db.sessions.begin() as session:
        owner = (await session.execute(select(User).where(User.username == "alice"))).scalar_one()
        view = await get_template(session, owner, tid)
        rich = view.content | {
            "body_html": "<p>Closed <b>Friday</b></p>",
            "per_channel": {
                "telegram": {"body": "Closed *Friday*", "format": "markdown"},
                "sms": {"body": "Closed Friday"},
            },
        }
        await update_template(session, owner, tid, {}, content=rich, now=datetime.now(UTC))
    saved = await alice.post(f"/templates/{tid}", _fields(body="Closed all week.", sms_body=""))
    assert saved.has("Saved as version 3.")
    async with console.api.db.sessions() as session:
        content = (await get_template(session, owner, tid)).content
    assert content["body"] == "Closed all week."
    assert content["body_html"] == "<p>Closed <b>Friday</b></p>"
    assert content["per_channel"] == {"telegram": {"body": "Closed *Friday*", "format": "markdown"}}
