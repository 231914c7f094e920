"""Broadcasts over the admin API: presend, send, live counters, deliveries, idempotency,
attachments, owner scoping, cancel, and the error shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from persistence.models import Message
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import make_customers

MESSAGES = "/api/v1/messages"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def _customers(api: Api, count: int, owner: int | None = None) -> list[int]:
    rows = await make_customers(
        api.db.sessions,
        count,
        owner_id=owner,
        sms=lambda i: f"+39333000{i:04d}",
        email=lambda i: f"c{i}@example.org",
    )
    return [c.id for c in rows]


def _broadcast(ids: list[int], **fields: object) -> dict[str, object]:
    return {"channels": ["storage"], "body": "Office closed", "recipients": {"customer": ids}} | (
        fields
    )


async def test_presend_plans_counts_and_cost_without_writing(api: Api) -> None:
    """A dry run shows per-channel counts, SMS encoding and fragments and cost; nothing is sent."""
    ids = await _customers(api, 3)
    plan = await api.post(
        MESSAGES + "?presend=true",
        json=_broadcast([*ids, ids[0]], channels=["sms", "storage"], body="Ciao è"),
        expect=200,
    )
    sms = plan["channels"][0]
    assert (sms["channel"], sms["valid"], sms["duplicate"]) == ("sms", 3, 0)
    assert sms["sms"]["encoding"] and sms["sms"]["fragments"] == 1
    assert sms["estimated_cost"] == "0.15"
    assert plan["recipients"] == 3
    async with api.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_send_answers_202_and_counters_follow_delivery(api: Api) -> None:
    """The 202 names the message; its counters move from pending to success as it is delivered."""
    ids = await _customers(api, 5)
    answer = await api.post(MESSAGES, json=_broadcast(ids, subject="News"), expect=202)
    (queued,) = answer["messages"]
    assert queued["counts"]["pending"] == 5
    path = f"{MESSAGES}/{queued['id']}"
    before = await api.get(path, expect=200)
    assert before["counters"] == {"pending": 5} and before["total"] == 5
    assert before["created_at"].endswith(("Z", "+00:00"))
    await api.dispatcher.drain()
    after = await api.get(path, expect=200)
    assert after["counters"] == {"success": 5} and after["status"] == "done"
    page = await api.get(path + "/recipients?limit=2", expect=200)
    assert [d["status"] for d in page["items"]] == ["success", "success"]
    assert page["next_offset"] == 2
    last = await api.get(path + "/recipients?limit=2&offset=4", expect=200)
    assert len(last["items"]) == 1 and last["next_offset"] is None
    assert last["items"][0]["attempts"] == 1 and last["items"][0]["address"] == f"customer:{ids[4]}"


async def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    """A repeated Idempotency-Key gets the same answer and sends once; another body is a 409."""
    ids = await _customers(api, 2)
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post(MESSAGES, json=_broadcast(ids), headers=headers, expect=202)
    again = await api.post(MESSAGES, json=_broadcast(ids), headers=headers, expect=202)
    assert again["replayed"] is True
    assert again["messages"] == first["messages"]
    other = await api.post(
        MESSAGES, json=_broadcast(ids, body="different"), headers=headers, expect=409
    )
    assert other["error"]["code"] == "idempotency_conflict"
    async with api.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 1


async def test_owner_scoping_refuses_foreign_recipients_and_hides_messages(api: Api) -> None:
    """A user cannot send to another user's recipients (listed, refused) nor read their messages."""
    alice, alice_key = await api.user("alice")
    bob, bob_key = await api.user("bob")
    mine = await _customers(api, 2, owner=alice.id)
    theirs = await _customers(api, 1, owner=bob.id)
    refused = await api.post(MESSAGES, key=alice_key, json=_broadcast([*mine, *theirs]), expect=403)
    assert refused["error"]["code"] == "recipients_not_visible"
    assert refused["error"]["details"] == [{"kind": "customer", "id": theirs[0]}]
    sent = await api.post(MESSAGES, key=alice_key, json=_broadcast(mine), expect=202)
    message_id = sent["messages"][0]["id"]
    await api.get(f"{MESSAGES}/{message_id}", key=bob_key, expect=404)
    await api.get(f"{MESSAGES}/{message_id}/recipients", key=bob_key, expect=404)
    await api.post(f"{MESSAGES}/{message_id}/cancel", key=bob_key, expect=404)
    assert (await api.get(MESSAGES, key=bob_key, expect=200))["items"] == []
    listed = await api.get(MESSAGES, key=alice_key, expect=200)
    assert [m["id"] for m in listed["items"]] == [message_id]
    everything = await api.get(MESSAGES, expect=200)  # the superuser
    assert [m["id"] for m in everything["items"]] == [message_id]


async def test_list_filters_by_channel_direction_and_dates(api: Api) -> None:
    """Filters narrow the list; the newest message comes first."""
    ids = await _customers(api, 1)
    await api.post(MESSAGES, json=_broadcast(ids, channels=["storage", "email"], subject="S"))
    api.clock.advance(3600)
    later = await api.post(MESSAGES, json=_broadcast(ids), expect=202)
    email = await api.get(MESSAGES + "?channel=email", expect=200)
    assert [m["channel"] for m in email["items"]] == ["email"]
    newest = await api.get(MESSAGES + "?limit=1", expect=200)
    assert newest["items"][0]["id"] == later["messages"][0]["id"] and newest["next_offset"] == 1
    since = (api.clock.now - timedelta(minutes=1)).isoformat()
    recent = await api.get(MESSAGES, params={"created_from": since}, expect=200)
    assert [m["id"] for m in recent["items"]] == [later["messages"][0]["id"]]
    assert (await api.get(MESSAGES + "?direction=received", expect=200))["items"] == []
    bad = await api.get(MESSAGES + "?limit=501", expect=422)
    assert bad["error"]["details"][0]["loc"] == ["query", "limit"]


async def test_multipart_send_stores_attachments(api: Api) -> None:
    """A multipart broadcast carries its files; the message lists them with size and hash."""
    ids = await _customers(api, 1)
    form = aiohttp.FormData()
    form.add_field("payload", json.dumps(_broadcast(ids)), content_type="application/json")
    form.add_field("attachments", b"%PDF-1.4 hi", filename="report.pdf")
    answer = await api.post(MESSAGES, data=form, expect=202)
    message = await api.get(f"{MESSAGES}/{answer['messages'][0]['id']}", expect=200)
    (attachment,) = message["attachments"]
    assert attachment["file_name"] == "report.pdf" and attachment["size"] == 11


async def test_oversized_attachment_and_body_are_413(db: Database, tmp_path: Path) -> None:
    """An attachment over its limit, or a body over the request limit, is refused with 413."""
    async with running_api(db, tmp_path, max_attachment_bytes=100, max_request_bytes=4096) as api:
        ids = await _customers(api, 1)
        form = aiohttp.FormData()
        form.add_field("payload", json.dumps(_broadcast(ids)))
        form.add_field("attachments", b"x" * 101, filename="big.bin")
        too_big = await api.post(MESSAGES, data=form, expect=413)
        assert too_big["error"]["code"] == "payload_too_large"
        huge = await api.post(MESSAGES, json=_broadcast(ids, body="y" * 5000), expect=413)
        assert huge["error"]["code"] == "payload_too_large"


async def test_errors_have_one_json_shape_and_the_right_status(api: Api) -> None:
    """Malformed JSON 400, wrong type 415, bad fields 422 with paths, no key 401, unknown 404."""
    bad_json = await api.post(
        MESSAGES, data=b"{nope", headers={"Content-Type": "application/json"}, expect=400
    )
    assert bad_json["error"]["code"] == "malformed_json"
    await api.post(MESSAGES, data=b"hi", headers={"Content-Type": "text/plain"}, expect=415)
    invalid = await api.post(MESSAGES, json={"channels": ["pigeon"], "body": "x"}, expect=422)
    assert invalid["error"]["details"][0]["loc"][:2] == ["body", "channels"]
    empty = await api.post(MESSAGES, json={"channels": ["storage"], "body": "x"}, expect=422)
    assert empty["error"]["details"][0]["loc"] == ["body", "recipients"]
    async with api.client.get(MESSAGES) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    await api.get(MESSAGES, key="hk_not-a-real-key", expect=401)
    missing = await api.get(MESSAGES + "/999999", expect=404)
    assert missing["error"]["code"] == "not_found"
    await api.get("/api/v1/nothing-here", expect=404)
    not_allowed = await api.call("PUT", MESSAGES, expect=405)
    assert not_allowed["error"]["code"] == "method_not_allowed"


async def test_cancel_stops_pending_deliveries(api: Api) -> None:
    """Cancel turns every pending delivery cancelled; a finished message cannot be cancelled."""
    ids = await _customers(api, 4)
    answer = await api.post(MESSAGES, json=_broadcast(ids), expect=202)
    message_id = answer["messages"][0]["id"]
    result = await api.post(f"{MESSAGES}/{message_id}/cancel", expect=200)
    assert result["cancelled"] == 4 and result["counters"] == {"cancelled": 4}
    assert result["status"] == "cancelled"
    assert await api.dispatcher.drain() == 0
    done = await api.post(MESSAGES, json=_broadcast(ids), expect=202)
    await api.dispatcher.drain()
    await api.post(f"{MESSAGES}/{done['messages'][0]['id']}/cancel", expect=409)
