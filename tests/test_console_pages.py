"""The console's forms and permissions over the aiohttp test client, on both databases: compose,
check and send (once), broadcasts and their cancel, recipients and their field errors, CSV import
after its check, the answer box, invoices, API keys, and what a user who is not a superuser sees."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, insert, select

from admin_api.console.pages import CONSOLE
from persistence import outbox
from persistence.models import Customer, Message, MessageRecipient
from persistence.users import user_by_name
from tests.conftest import Database
from tests.console_support import Browser, Console, running_console
from tests.factories import make_customers

BROADCAST = re.compile(r"/broadcasts/([0-9a-f-]{36})")


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(db, tmp_path) as running:
        yield running


async def _owner_of(console: Console, username: str) -> int:
    async with console.api.db.sessions() as session:
        user = await user_by_name(session, username)
    assert user is not None
    return user.id


async def _customers(console: Console, owner: str, count: int, **fields: object) -> list[int]:
    owner_id = await _owner_of(console, owner)
    made = await make_customers(console.api.db.sessions, count, owner_id=owner_id, **fields)
    return [c.id for c in made]


def _compose(**fields: object) -> dict[str, object]:
    form: dict[str, object] = {
        "channels": ["storage"],
        "kind": "customer",
        "mode": "filter",
        "subject": "Office closed",
        "body": "The office is closed on Friday.",
    }
    form.update(fields)
    return form


async def _check(browser: Browser, **fields: object) -> tuple[int, str, str]:
    page = await browser.post("/send/check", _compose(**fields))
    match = re.search(r'name="draft" value="([^"]+)"', page.text)
    return page.status, page.text, match.group(1) if match else ""


async def _send(browser: Browser, **fields: object) -> str:
    status, text, draft = await _check(browser, **fields)
    assert status == 200, text[:2000]
    page = await browser.post("/send/confirm", {"draft": draft})
    match = BROADCAST.search(page.url)
    assert match, page.url
    return match.group(1)


async def _messages(console: Console) -> int:
    async with console.api.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


# --- compose, check, send ------------------------------------------------------------------------


async def test_check_shows_who_gets_it_who_does_not_and_the_cost(console: Console) -> None:
    """The check page is the composer's dry run: reachable, unreachable with reasons, SMS cost."""
    browser = await console.user("alice")
    await _customers(console, "alice", 2, sms=lambda i: f"+3933300000{i}")
    await _customers(console, "alice", 1, name="No Phone")
    status, text, _draft = await _check(browser, channels=["sms"], body="Ciao")
    assert status == 200
    assert re.search(r'class="will-get">2<', text) and re.search(r'class="will-not-get">1<', text)
    assert "No Phone" in text
    assert "GSM, 4 characters, 1 fragments" in text
    assert await _messages(console) == 0  # nothing is written by a check


async def test_sending_twice_from_one_check_sends_once(console: Console) -> None:
    """A double click or a reload of Send replays the first answer: one broadcast."""
    browser = await console.user("alice")
    await _customers(console, "alice", 3)
    _status, _text, draft = await _check(browser)
    first = await browser.post("/send/confirm", {"draft": draft})
    again = await browser.post("/send/confirm", {"draft": draft})
    assert BROADCAST.search(first.url) and first.url == again.url
    assert await _messages(console) == 1
    assert first.has("Your message is queued for delivery.")


async def test_form_errors_are_shown_next_to_their_field(console: Console) -> None:
    """No channel, no text, an id that is not a number: each error is named where it belongs."""
    browser = await console.user("alice")
    await _customers(console, "alice", 1)
    status, text, _ = await _check(browser, channels=[], body="")
    assert status == 422 and 'id="error-channels"' in text
    status, text, _ = await _check(browser, body="   ")
    assert status == 422 and 'id="error-body"' in text
    status, text, _ = await _check(browser, mode="ids", ids="1, two")
    assert status == 422 and "Not a recipient id: two" in text
    status, text, _ = await _check(browser, channels=["email"], subject="")
    assert status == 422 and 'id="error-subject"' in text


async def test_a_recipient_of_another_user_cannot_be_sent_to(console: Console) -> None:
    """Pasting someone else's recipient id is reported on the check page and Send is off."""
    await console.user("alice")
    bob = await console.user("bob")
    (theirs,) = await _customers(console, "alice", 1)
    status, text, _draft = await _check(bob, mode="ids", ids=str(theirs))
    assert status == 200
    assert "do not exist or are not yours" in text or "does not exist or is not yours" in text
    assert re.search(r'<button type="submit" class="primary" disabled>', text)


async def test_live_counters_use_the_channels_rules(console: Console) -> None:
    """While typing: Telegram length, SMS encoding and fragments, as the composer counts them."""
    browser = await console.user("alice")
    page = await browser.post("/send/counters", {"subject": "", "body": "Ciao 😀"})
    assert "SMS: UCS2, 7 characters, 1 fragments" in page.text
    gsm = await browser.post("/send/counters", {"subject": "", "body": "Perché €"})
    assert "SMS: GSM, 9 characters, 1 fragments" in gsm.text  # € costs two septets
    long = await browser.post("/send/counters", {"subject": "", "body": "x" * 5000})
    assert "2 messages" in long.text


async def test_filters_select_everyone_who_matches(console: Console) -> None:
    """'Everyone who matches' sends to the filter's recipients, counted live while choosing."""
    browser = await console.user("alice")
    await _customers(console, "alice", 2, telegram_chat_id=lambda i: 100 + i)
    await _customers(console, "alice", 3)
    count = await browser.get("/send/matching?kind=customer&f_telegram=yes")
    assert count.has("2 recipients match these filters.")
    bid = await _send(browser, f_telegram="yes")
    async with console.api.db.sessions() as session:
        total = await session.scalar(select(Message.total).where(Message.broadcast_id == bid))
    assert total == 2


# --- the broadcast page ---------------------------------------------------------------------------


async def test_the_broadcast_page_shows_counters_and_deliveries(console: Console) -> None:
    """Per-channel counters, and the deliveries table with its status filter and search."""
    browser = await console.user("alice")
    await _customers(console, "alice", 3, email=lambda i: f"c{i}@example.org")
    bid = await _send(browser, channels=["storage", "email"])
    await console.api.dispatcher.drain()
    page = await browser.get(f"/broadcasts/{bid}")
    assert page.status == 200 and page.text.count("data-progress=") == 2
    table = await browser.get(f"/broadcasts/{bid}/deliveries?channel=email&q=c1%40")
    assert "c1@example.org" in table.text and "c2@example.org" not in table.text
    none = await browser.get(f"/broadcasts/{bid}/deliveries?channel=email&status=failed")
    assert none.has("No deliveries match.")


async def test_progress_streams_until_the_broadcast_is_done(console: Console) -> None:
    """The SSE stream sends counters as they change and ends once every delivery is final."""
    browser = await console.user("alice")
    await _customers(console, "alice", 4)
    bid = await _send(browser)
    events: list[str] = []
    async with browser.http.get(
        f"{browser.base}/broadcasts/{bid}/events", headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = await response.content.readuntil(b"\r\n\r\n")
        events.append(first.decode())
        await console.api.dispatcher.drain()
        async for line in response.content:
            events.append(line.decode())
    text = "".join(events)
    assert '"pending":4' in events[0]
    assert '"success":4' in text and '"final":true' in text and "event: end" in text


async def test_watchers_of_one_broadcast_share_one_poller(console: Console) -> None:
    """Three people watching the same broadcast cost one reader, not three."""
    browser = await console.user("alice")
    await _customers(console, "alice", 1)
    bid = await _send(browser)
    state = console.api.client.app[CONSOLE]
    responses = []
    for _ in range(3):
        response = await browser.http.get(
            f"{browser.base}/broadcasts/{bid}/events", headers={"Accept": "text/event-stream"}
        )
        await response.content.readuntil(b"\r\n\r\n")
        responses.append(response)
    assert state.hub.pollers == 1
    for response in responses:
        response.close()


async def test_cancel_asks_first_then_stops_the_rest(console: Console) -> None:
    """Cancel has a confirmation page; afterwards the pending deliveries are cancelled."""
    browser = await console.user("alice")
    await _customers(console, "alice", 3)
    bid = await _send(browser)
    confirm = await browser.get(f"/broadcasts/{bid}/cancel")
    assert confirm.has("Cancel this broadcast?")
    done = await browser.post(f"/broadcasts/{bid}/cancel", {})
    assert done.has("Cancelled: 3 deliveries will not be sent.")
    assert 'data-count="' in done.text and ">3</b>" in done.text


async def test_a_scheduled_broadcast_shows_its_time_and_can_be_cancelled(
    console: Console,
) -> None:
    """A time in the future schedules the broadcast; it can be cancelled before it."""
    browser = await console.user("alice")
    await _customers(console, "alice", 1)
    bid = await _send(browser, send_at="2099-06-01T09:30")
    page = await browser.get(f"/broadcasts/{bid}")
    assert 'id="scheduled-at"' in page.text and "2099" in page.text
    cancelled = await browser.post(f"/broadcasts/{bid}/cancel", {})
    assert cancelled.has("cancelled")
    past = await browser.post("/send/check", _compose(send_at="2001-01-01T00:00"))
    assert past.status == 422 and 'id="error-send_at"' in past.text


async def test_a_telegram_broadcast_is_recalled_after_a_confirmation(console: Console) -> None:
    """Recall asks first, cancels what is pending, and cannot be asked twice."""
    browser = await console.user("alice")
    await _customers(console, "alice", 2, telegram_chat_id=lambda i: 880_000 + i)
    bid = await _send(browser, channels=["telegram"], send_at="2099-06-01T09:30")
    page = await browser.get(f"/broadcasts/{bid}")
    assert 'id="recall"' in page.text
    confirm = await browser.get(f"/broadcasts/{bid}/recall")
    assert confirm.has("Recall this broadcast?")
    done = await browser.post(f"/broadcasts/{bid}/recall", {})
    assert done.has("Recall started: 2 deliveries cancelled, 0 Telegram messages being deleted.")
    assert 'id="recall"' not in done.text
    again = await browser.post(f"/broadcasts/{bid}/recall", {})
    assert again.status == 409 and again.has("There is nothing left to recall.")


async def test_a_recall_says_what_is_still_being_sent_is_deleted_later(console: Console) -> None:
    """Sends another process has under way are announced as deleted once delivered."""
    browser = await console.user("alice")
    await _customers(console, "alice", 2, telegram_chat_id=lambda i: 881_000 + i)
    bid = await _send(browser, channels=["telegram"])
    now = console.api.clock()
    async with console.api.db.sessions.begin() as session:
        taken = await outbox.claim(
            session,
            channel="telegram",
            limit=10,
            now=now,
            lease_until=now + timedelta(minutes=1),
            owner="another-process",
        )
    assert len(taken) == 2
    done = await browser.post(f"/broadcasts/{bid}/recall", {})
    assert done.has(
        "Recall started: 0 deliveries cancelled, 0 Telegram messages being deleted. "
        "2 more still being sent will be deleted once delivered."
    )


async def test_another_users_broadcast_is_not_found(console: Console) -> None:
    """Bob, not a superuser, gets a 404 page for Alice's broadcast and its parts."""
    alice = await console.user("alice")
    bob = await console.user("bob")
    await _customers(console, "alice", 1)
    bid = await _send(alice)
    for path in (
        f"/broadcasts/{bid}",
        f"/broadcasts/{bid}/deliveries",
        f"/broadcasts/{bid}/events",
    ):
        page = await bob.get(path)
        assert page.status == 404 and page.has("Page not found"), path
    assert (await bob.post(f"/broadcasts/{bid}/cancel", {})).status == 404


# --- recipients, typologies, import -------------------------------------------------------------


async def test_recipient_form_errors_sit_next_to_the_field(console: Console) -> None:
    """An invalid phone or email is refused with its own message; a good one is stored E.164."""
    browser = await console.user("alice")
    bad = await browser.post(
        "/recipients/customer/new", {"name": "Ada", "sms": "12", "email": "ada@"}
    )
    assert bad.status == 422 and 'id="error-sms"' in bad.text
    assert 'value="12"' in bad.text  # what was typed stays
    bad_email = await browser.post(
        "/recipients/customer/new", {"name": "Ada", "sms": "333 123 4567", "email": "ada@"}
    )
    assert 'id="error-email"' in bad_email.text
    good = await browser.post(
        "/recipients/customer/new", {"name": "Ada", "sms": "333 123 4567", "email": "ada@x.org"}
    )
    assert good.has("Ada was added.") and "+393331234567" in good.text


async def test_recipients_are_edited_and_deleted_by_their_owner_only(console: Console) -> None:
    """The owner edits and deletes; another user gets 404 for the same record."""
    alice = await console.user("alice")
    bob = await console.user("bob")
    (rid,) = await _customers(console, "alice", 1, name="Ada")
    assert (await bob.get(f"/recipients/customer/{rid}/edit")).status == 404
    assert (await bob.post(f"/recipients/customer/{rid}/delete", {})).status == 404
    edited = await alice.post(f"/recipients/customer/{rid}/edit", {"name": "Ada Lovelace"})
    assert edited.has("Changes to Ada Lovelace saved.")
    assert (await alice.get(f"/recipients/customer/{rid}/delete")).has("Delete Ada Lovelace?")
    gone = await alice.post(f"/recipients/customer/{rid}/delete", {})
    assert gone.has("The recipient was deleted")
    async with console.api.db.sessions() as session:
        assert await session.get(Customer, rid) is None


async def test_the_csv_import_reports_each_row_before_writing(console: Console) -> None:
    """The check lists every row's fate and writes nothing; confirming imports the good rows."""
    browser = await console.user("alice")
    await browser.get("/recipients/customer/import")
    upload = aiohttp.FormData()
    upload.add_field(
        "file",
        b"name,sms\nGrace,+393330000001\nBad,12\nLinus,+393330000002\n",
        filename="people.csv",
        content_type="text/csv",
    )
    report = await browser.post("/recipients/customer/import", upload)
    assert report.has("2 to create, 0 to update, 1 rejected")
    assert re.search(r"<td>3</td>\s*<td><span class=\"badge status-failed\">", report.text)
    async with console.api.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0
    draft = re.search(r'name="draft" value="([^"]+)"', report.text)
    assert draft
    done = await browser.post("/recipients/customer/import/confirm", {"draft": draft.group(1)})
    assert done.has("Imported: 2 created, 0 updated, 1 rows skipped.")
    assert "Grace" in done.text and "Linus" in done.text


async def test_only_superusers_change_typologies(console: Console) -> None:
    """Everyone reads typologies; a user who is not a superuser gets 403 trying to add one."""
    admin = await console.user("root", superuser=True)
    user = await console.user("alice")
    added = await admin.post("/typologies/messages", {"name": "News"})
    assert added.has("Typology News added.")
    duplicate = await admin.post("/typologies/messages", {"name": "news"})
    assert duplicate.status == 422 and duplicate.has("already exists")
    assert (await user.get("/typologies/messages")).has("News")
    assert (await user.post("/typologies/messages", {"name": "Mine"})).status == 403


# --- inbox and the answer box ---------------------------------------------------------------------


async def _inbound(console: Console, rid: int, text: str) -> None:
    async with console.api.db.sessions.begin() as session:
        message = Message(
            broadcast_id=str(uuid.uuid4()),
            channel="telegram",
            direction="received",
            status="received",
            body=text,
            sender_name="Ada",
            total=1,
        )
        session.add(message)
        await session.flush()
        await session.execute(
            insert(MessageRecipient),
            [
                {
                    "message_id": message.id,
                    "channel": "telegram",
                    "recipient_kind": "customer",
                    "recipient_id": rid,
                    "address": "501",
                    "status": "received",
                    "is_sender": True,
                }
            ],
        )


async def test_the_inbox_shows_unread_threads_and_reading_clears_them(console: Console) -> None:
    """A reply shows as unread in the inbox until its thread is opened."""
    browser = await console.user("alice")
    (rid,) = await _customers(console, "alice", 1, name="Ada", telegram_chat_id=501)
    await _inbound(console, rid, "Thanks, see you on Monday")
    inbox = await browser.get("/inbox?unread=1")
    assert 'class="badge unread"' in inbox.text and "Ada" in inbox.text
    thread = await browser.get(f"/inbox/customer/{rid}")
    assert thread.has("Thanks, see you on Monday")
    assert not (await browser.get("/inbox?unread=1")).has("Ada")


async def test_the_answer_goes_through_the_outbox_as_a_reply(console: Console) -> None:
    """The answer is a Telegram message to that one person, marked as a reply, in the thread."""
    browser = await console.user("alice")
    (rid,) = await _customers(console, "alice", 1, name="Ada", telegram_chat_id=501)
    page = await browser.post(f"/inbox/customer/{rid}/answer", {"text": "On my way", "key": "k1"})
    assert page.has("Your answer is on its way.") and page.has("On my way")
    again = await browser.post(f"/inbox/customer/{rid}/answer", {"text": "On my way", "key": "k1"})
    assert again.status == 200
    async with console.api.db.sessions() as session:
        rows = (await session.execute(select(Message.channel, Message.extra))).all()
        address = await session.scalar(select(MessageRecipient.address))
    assert rows == [("telegram", {"reply": True})] and address == "501"


async def test_an_answer_to_someone_not_on_telegram_is_refused_with_the_reason(
    console: Console,
) -> None:
    """No chat linked: the page says so and nothing is queued."""
    browser = await console.user("alice")
    (rid,) = await _customers(console, "alice", 1, name="Ada")
    page = await browser.post(f"/inbox/customer/{rid}/answer", {"text": "Hello"})
    assert page.status == 422 and page.has("cannot be reached on Telegram")
    assert await _messages(console) == 0


# --- invoices and API keys ----------------------------------------------------------------------


async def test_invoices_are_for_superusers_and_explain_the_409(console: Console) -> None:
    """Marking a period with open deliveries is refused with the reason; forcing marks it."""
    admin = await console.user("root", superuser=True)
    user = await console.user("alice")
    assert (await user.get("/invoices")).status == 403
    await _customers(console, "root", 2, sms=lambda i: f"+3933300000{i}")
    await _send(admin, channels=["sms"], body="Bill")  # pending: not final yet
    report = await admin.get("/invoices")
    assert report.status == 200
    link = re.search(r'href="(/invoices/mark\?[^"]+)"', report.text)
    assert link is None  # nothing billed yet: no units to invoice
    root_id = await _owner_of(console, "root")
    async with console.api.db.sessions.begin() as session:
        message_id = await session.scalar(select(Message.id))
        await session.execute(
            MessageRecipient.__table__.update()
            .where(MessageRecipient.message_id == message_id, MessageRecipient.recipient_id > 0)
            .values(status="unknown", sent_number=1)
        )
        created = await session.scalar(select(Message.created_at))
    assert created is not None
    start = created.date().replace(day=1).isoformat()
    form = {"period": "monthly", "period_start": start, "sender_id": str(root_id), "channel": "sms"}
    refused = await admin.post("/invoices/mark", form)
    assert refused.status == 409 and 'id="invoice-conflict"' in refused.text
    forced = await admin.post("/invoices/mark", {**form, "force": "1"})
    assert forced.has("Marked invoiced: 1 messages, 2 units, 0.1.")


async def test_an_api_key_is_shown_once_and_revoked_from_the_console(console: Console) -> None:
    """The new key is on the page once (then only its prefix); revoked, the API refuses it."""
    browser = await console.user("alice")
    created = await browser.post("/keys", {"name": "nightly script"})
    key = re.search(r'id="new-key">(hk_[^<]+)<', created.text)
    assert key
    await console.api.get("/api/v1/messages", key=key.group(1), expect=200)
    listing = await browser.get("/keys")
    assert key.group(1) not in listing.text and "nightly script" in listing.text
    revoke = re.search(r'href="/keys/(\d+)/revoke"', listing.text)
    assert revoke
    # A key of another user is not theirs to revoke.
    other = await console.user("bob")
    assert (await other.post(f"/keys/{revoke.group(1)}/revoke", {})).status == 404
    done = await browser.post(f"/keys/{revoke.group(1)}/revoke", {})
    assert done.has("is revoked")
    await console.api.get("/api/v1/messages", key=key.group(1), expect=401)


async def test_shutting_down_ends_every_live_stream_at_once(console: Console) -> None:
    """A server stopping does not wait for open progress streams: each ends right away."""
    browser = await console.user("alice")
    await _customers(console, "alice", 1)
    bid = await _send(browser)
    state = console.api.client.app[CONSOLE]
    async with browser.http.get(
        f"{browser.base}/broadcasts/{bid}/events", headers={"Accept": "text/event-stream"}
    ) as response:
        await response.content.readuntil(b"\r\n\r\n")
        await state.hub.close()
        rest = (await asyncio.wait_for(response.content.read(), 5)).decode()
    assert "event: end" in rest and state.hub.pollers == 0
