""" "Send me a test": a draft goes to the caller's own email (aiosmtpd) and linked Telegram chat
(the simulator) only, marked as a test, never billed nor listed among the broadcasts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.smtp_channel import EmailChannel
from channels.telegram_channel import TelegramChannel
from channels.telegram_client import BotApiClient
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence.models import User
from persistence.user_addresses import set_email
from sandbox.telegram_simulator import TelegramSimulator
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import make_customers
from tests.test_email_channel import Server, StartServer, start_server
from tests.test_sms_channel import sim_clock

__all__ = ["sim_clock", "start_server"]  # fixtures shared with the channel tests

TEST = "/api/v1/messages/test"
MY_CHAT = 7_300_001
CUSTOMER_CHAT = 7_300_002


@pytest.fixture
async def smtp(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture
async def api(
    db: Database, tmp_path: Path, telegram_sim: TelegramSimulator, smtp: Server
) -> AsyncIterator[Api]:
    telegram = TelegramChannel(
        BotApiClient(telegram_sim.token, telegram_sim.base_url),
        TelegramRateLimiter(1000, per_chat_interval=0.0),
    )
    email = EmailChannel(smtp.config())
    try:
        async with running_api(
            db, tmp_path, channels={"telegram": telegram, "email": email}
        ) as running:
            yield running
    finally:
        await email.close()


async def _me(
    api: Api, sim: TelegramSimulator, *, email: bool = True, chat: bool = True
) -> tuple[int, str]:
    """A user "me" (id, API key) with their own email and linked chat as asked."""
    user, key = await api.user("me")
    async with api.db.sessions.begin() as session:
        if email:
            await set_email(session, user.id, "me@example.org")
        if chat:
            row = await session.get(User, user.id)
            assert row is not None
            row.telegram_chat_id = MY_CHAT
    if chat:
        sim.add_user(MY_CHAT, "Me")
    return user.id, key


def _draft(**fields: Any) -> dict[str, Any]:
    return {
        "channels": ["telegram", "email"],
        "subject": "Office closed",
        "body": "The office is closed on Friday.",
    } | fields


async def test_a_test_goes_only_to_my_own_email_and_chat(
    api: Api, telegram_sim: TelegramSimulator, smtp: Server
) -> None:
    """The draft reaches my email and my Telegram chat, its subject starting with [TEST]; the
    customer it is rendered for receives nothing."""
    me, key = await _me(api, telegram_sim)
    (customer,) = await make_customers(
        api.db.sessions,
        1,
        owner_id=me,
        email=lambda i: "customer@example.org",
        telegram_chat_id=lambda i: CUSTOMER_CHAT,
    )
    telegram_sim.add_user(CUSTOMER_CHAT, "Customer")
    answer = await api.post(
        TEST,
        json=_draft(recipient={"kind": "customer", "id": customer.id}),
        key=key,
        expect=202,
    )
    assert answer["skipped"] == []
    assert sorted(m["channel"] for m in answer["messages"]) == ["email", "telegram"]
    await api.dispatcher.drain()
    (mail,) = await smtp.handler.wait_for(1)
    assert mail.rcpt_tos == ["me@example.org"]
    assert mail.mail["Subject"] == "[TEST] Office closed"
    assert mail.mail["List-Unsubscribe"] is None  # it names no recipient to unsubscribe
    (sent,) = telegram_sim.messages_to(MY_CHAT)
    assert sent.visible_text.startswith("[TEST] Office closed")
    assert telegram_sim.messages_to(CUSTOMER_CHAT) == []
    for queued in answer["messages"]:
        message = await api.get(f"/api/v1/messages/{queued['id']}", key=key, expect=200)
        assert message["is_test"] is True and message["counters"] == {"success": 1}


async def test_a_channel_without_my_address_is_skipped_with_the_reason(
    api: Api, telegram_sim: TelegramSimulator, smtp: Server
) -> None:
    """With no linked Telegram, the test goes by email alone and says why Telegram and SMS were
    skipped; with no address at all nothing is queued."""
    _, key = await _me(api, telegram_sim, chat=False)
    answer = await api.post(
        TEST, json=_draft(channels=["telegram", "email", "sms"]), key=key, expect=202
    )
    assert [m["channel"] for m in answer["messages"]] == ["email"]
    reasons = {s["channel"]: s["reason"] for s in answer["skipped"]}
    assert set(reasons) == {"telegram", "sms"}
    assert "/link" in reasons["telegram"]
    _, other = await api.user("nobody")
    empty = await api.post(TEST, json=_draft(), key=other, expect=202)
    assert empty["broadcast_id"] is None and empty["messages"] == []
    assert [s["channel"] for s in empty["skipped"]] == ["telegram", "email"]


async def test_a_test_is_neither_a_broadcast_nor_billed(
    api: Api, telegram_sim: TelegramSimulator, smtp: Server
) -> None:
    """After a test send the broadcast list is empty and no invoice line counts it."""
    _, key = await _me(api, telegram_sim)
    await api.post(TEST, json=_draft(), key=key, expect=202)
    await api.dispatcher.drain()
    assert (await api.get("/api/v1/broadcasts", key=key, expect=200))["items"] == []
    assert (await api.get("/api/v1/broadcasts", expect=200))["items"] == []
    invoices = await api.get("/api/v1/invoices", expect=200)
    assert invoices["lines"] == []
    events = await api.get("/api/v1/audit?action=broadcast.test_sent", expect=200)
    assert len(events["items"]) == 1


async def test_a_test_from_a_template_and_for_a_hidden_recipient(
    api: Api, telegram_sim: TelegramSimulator, smtp: Server
) -> None:
    """A test can take its content from a template (the message names it); rendering it for a
    recipient the caller may not see is a 403 and sends nothing."""
    _, key = await _me(api, telegram_sim)
    template = await api.post(
        "/api/v1/templates",
        json={"name": "Hours", "subject": "Our hours", "body": "Open 9 to 5."},
        key=key,
        expect=201,
    )
    answer = await api.post(
        TEST, json={"channels": ["email"], "template_id": template["id"]}, key=key, expect=202
    )
    message = await api.get(f"/api/v1/messages/{answer['messages'][0]['id']}", key=key)
    assert message["subject"] == "[TEST] Our hours" and message["template_id"] == template["id"]
    (hidden,) = await make_customers(api.db.sessions, 1, owner_id=api.admin.id)
    await api.post(
        TEST, json=_draft(recipient={"kind": "customer", "id": hidden.id}), key=key, expect=403
    )
    await api.post(TEST, json=_draft(recipients={"customer": [1]}), key=key, expect=422)


async def test_a_test_is_rendered_for_the_recipient_chosen(
    api: Api, telegram_sim: TelegramSimulator, smtp: Server
) -> None:
    """With `recipient`, the placeholders carry that recipient's data in my test; a value the
    recipient lacks is a 422 naming the field."""
    me, key = await _me(api, telegram_sim)
    (ada,) = await make_customers(
        api.db.sessions, 1, owner_id=me, name="Ada", extra={"contract": "C-7"}
    )
    (bob,) = await make_customers(api.db.sessions, 1, owner_id=me, name="Bob")
    draft = _draft(
        channels=["email"],
        subject="For {{ name }}",
        body="Contract {{ extra.contract }} renews.",
    )
    await api.post(
        TEST, json=draft | {"recipient": {"kind": "customer", "id": ada.id}}, key=key, expect=202
    )
    await api.dispatcher.drain()
    (mail,) = await smtp.handler.wait_for(1)
    assert mail.mail["Subject"] == "[TEST] For Ada"
    text = mail.mail.get_body(("plain",))
    assert text is not None and "Contract C-7 renews." in text.get_content()
    missing = await api.post(
        TEST, json=draft | {"recipient": {"kind": "customer", "id": bob.id}}, key=key, expect=422
    )
    assert missing["error"]["message"].startswith("body:")
