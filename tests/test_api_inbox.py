"""The inbox over the admin API: a recipient's thread in both directions, read receipts and
unread counts, scoped to the recipients a user owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from persistence.registration import InboundText, LinkedRecipient, store_inbound
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import make_customers


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def _write_in(api: Api, customer_id: int, text: str, n: int) -> int:
    inbound = InboundText(
        chat_id=5000 + customer_id,
        telegram_message_id=n,
        text=text,
        sender_name="Nina Rossi",
        received_at=datetime.now(UTC),
    )
    return await store_inbound(
        api.db.sessions, inbound, [LinkedRecipient("customer", customer_id, "Nina")]
    )


async def test_thread_shows_both_directions_and_read_receipts_count_down(api: Api) -> None:
    """What she wrote and what we sent share one thread; reading a reply lowers the unread count."""
    alice, alice_key = await api.user("alice")
    (nina,) = await make_customers(api.db.sessions, 1, owner_id=alice.id, name="Nina")
    first = await _write_in(api, nina.id, "Hello office", 1)
    await _write_in(api, nina.id, "Are you there?", 2)
    api.clock.advance(3600)
    await api.post(
        "/api/v1/messages",
        key=alice_key,
        json={
            "channels": ["storage"],
            "body": "Yes, we are",
            "recipients": {"customer": [nina.id]},
        },
        expect=202,
    )
    thread_path = f"/api/v1/recipients/customer/{nina.id}/messages"
    thread = await api.get(thread_path, key=alice_key, expect=200)
    assert [(e["direction"], e["body"]) for e in thread["items"]] == [
        ("sent", "Yes, we are"),
        ("received", "Are you there?"),
        ("received", "Hello office"),
    ]
    assert thread["unread"] == 2
    receipt = await api.post(f"/api/v1/messages/{first}/read", key=alice_key, expect=200)
    again = await api.post(f"/api/v1/messages/{first}/read", key=alice_key, expect=200)
    assert again["read_at"] == receipt["read_at"]
    assert (await api.get(thread_path, key=alice_key, expect=200))["unread"] == 1
    inbox = await api.get("/api/v1/inbox", key=alice_key, expect=200)
    (summary,) = inbox["items"]
    assert (summary["name"], summary["received"], summary["unread"]) == ("Nina", 2, 1)
    message = await api.get(f"/api/v1/messages/{first}", key=alice_key, expect=200)
    assert message["direction"] == "received" and message["body"] == "Hello office"
    # The superuser's own receipts are separate from alice's.
    assert (await api.get("/api/v1/inbox?unread_only=true", expect=200))["items"][0]["unread"] == 2


async def test_other_users_cannot_read_a_thread_they_do_not_own(api: Api) -> None:
    """Bob sees neither Alice's recipient's thread nor her replies, and cannot mark them read."""
    alice, _ = await api.user("alice")
    _, bob_key = await api.user("bob")
    (nina,) = await make_customers(api.db.sessions, 1, owner_id=alice.id)
    reply = await _write_in(api, nina.id, "Hi", 1)
    await api.get(f"/api/v1/recipients/customer/{nina.id}/messages", key=bob_key, expect=404)
    await api.post(f"/api/v1/messages/{reply}/read", key=bob_key, expect=404)
    await api.get(f"/api/v1/messages/{reply}", key=bob_key, expect=404)
    assert (await api.get("/api/v1/inbox", key=bob_key, expect=200))["items"] == []
