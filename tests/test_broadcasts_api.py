"""A broadcast as one object over the admin API: read, list, cancel at once, recall, send_at."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from channels.telegram_channel import TelegramChannel
from channels.telegram_client import BotApiClient
from channels.telegram_rate_limit import TelegramRateLimiter
from channels.webhook_urls import UrlPolicy
from persistence.models import WebhookEvent
from persistence.recall import recall_late_deliveries
from sandbox.telegram_simulator import TelegramSimulator
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import EpochClock, make_customers

MESSAGES = "/api/v1/messages"
BROADCASTS = "/api/v1/broadcasts"
CHAT_BASE = 7_100_000


@pytest.fixture
def sim_clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
async def sim(sim_clock: EpochClock) -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(clock=sim_clock) as simulator:
        yield simulator


@pytest.fixture
async def api(db: Database, tmp_path: Path, sim: TelegramSimulator) -> AsyncIterator[Api]:
    telegram = TelegramChannel(
        BotApiClient(sim.token, sim.base_url), TelegramRateLimiter(1000, per_chat_interval=0.0)
    )
    async with running_api(
        db, tmp_path, channels={"telegram": telegram}, webhook_policy=UrlPolicy(allow_loopback=True)
    ) as running:
        yield running


async def _people(
    api: Api, sim: TelegramSimulator, count: int, owner: int | None = None
) -> list[int]:
    """Customers with an email and a Telegram chat the simulator knows."""
    rows = await make_customers(
        api.db.sessions,
        count,
        owner_id=owner,
        email=lambda i: f"p{i}@example.org",
        telegram_chat_id=lambda i: CHAT_BASE + i,
    )
    for row in rows:
        assert row.telegram_chat_id is not None
        sim.add_user(row.telegram_chat_id, row.name)
    return [row.id for row in rows]


def _compose(ids: list[int], **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "channels": ["telegram", "email"],
        "subject": "Office news",
        "body": "The office is closed on Friday.",
        "recipients": {"customer": ids},
    }
    return base | fields


async def _send(api: Api, ids: list[int], key: str | None = None, **fields: object) -> str:
    answer = await api.post(MESSAGES, json=_compose(ids, **fields), key=key, expect=202)
    return str(answer["broadcast_id"])


async def test_a_broadcast_reads_as_one_object_with_every_channel(
    api: Api, sim: TelegramSimulator
) -> None:
    """One GET shows both channels' messages, their live counters and the overall status."""
    ids = await _people(api, sim, 3)
    bid = await _send(api, ids)
    queued = await api.get(f"{BROADCASTS}/{bid}", expect=200)
    assert queued["status"] == "queued" and queued["channels"] == ["telegram", "email"]
    assert queued["counters"] == {"pending": 6}
    assert queued["sender_name"] == "admin" and queued["subject"] == "Office news"
    await api.dispatcher.drain()
    done = await api.get(f"{BROADCASTS}/{bid}", expect=200)
    assert done["status"] == "done" and done["counters"] == {"success": 6}
    assert [m["counters"] for m in done["messages"]] == [{"success": 3}, {"success": 3}]


async def test_cancel_stops_every_channel_with_one_call(api: Api, sim: TelegramSimulator) -> None:
    """A scheduled two-channel broadcast is cancelled whole; a second cancel is a 409."""
    ids = await _people(api, sim, 4)
    later = (api.clock() + timedelta(hours=3)).isoformat()
    bid = await _send(api, ids, send_at=later)
    answer = await api.post(f"{BROADCASTS}/{bid}/cancel", expect=200)
    assert answer["cancelled"] == 8
    assert answer["broadcast"]["status"] == "cancelled"
    assert {m["status"] for m in answer["broadcast"]["messages"]} == {"cancelled"}
    again = await api.post(f"{BROADCASTS}/{bid}/cancel", expect=409)
    assert again["error"]["code"] == "conflict"


async def test_the_list_filters_by_status_and_channel(api: Api, sim: TelegramSimulator) -> None:
    """Broadcasts are listed newest first and filtered by their overall status and channel."""
    ids = await _people(api, sim, 2)
    sent_now = await _send(api, ids, channels=["telegram"])
    await api.dispatcher.drain()
    later = (api.clock() + timedelta(hours=1)).isoformat()
    scheduled = await _send(api, ids, send_at=later)
    everything = await api.get(BROADCASTS, expect=200)
    assert [b["id"] for b in everything["items"]] == [scheduled, sent_now]
    waiting = await api.get(f"{BROADCASTS}?status=scheduled", expect=200)
    assert [b["id"] for b in waiting["items"]] == [scheduled]
    by_email = await api.get(f"{BROADCASTS}?channel=email", expect=200)
    assert [b["id"] for b in by_email["items"]] == [scheduled]
    page = await api.get(f"{BROADCASTS}?limit=1", expect=200)
    assert len(page["items"]) == 1 and page["next_offset"] == 1


async def test_messages_can_be_filtered_by_broadcast(api: Api, sim: TelegramSimulator) -> None:
    """GET /messages?broadcast_id= answers exactly that broadcast's messages."""
    ids = await _people(api, sim, 1)
    first = await _send(api, ids)
    await _send(api, ids, channels=["email"])
    page = await api.get(f"{MESSAGES}?broadcast_id={first}", expect=200)
    assert sorted(m["channel"] for m in page["items"]) == ["email", "telegram"]
    assert {m["broadcast_id"] for m in page["items"]} == {first}


async def test_another_users_broadcast_is_not_found(api: Api, sim: TelegramSimulator) -> None:
    """A user neither reads, lists, cancels nor recalls somebody else's broadcast."""
    ids = await _people(api, sim, 1)
    bid = await _send(api, ids)
    _, key = await api.user("clerk")
    for method, path in (
        ("GET", f"{BROADCASTS}/{bid}"),
        ("POST", f"{BROADCASTS}/{bid}/cancel"),
        ("POST", f"{BROADCASTS}/{bid}/recall"),
    ):
        await api.call(method, path, key=key, expect=404)
    assert (await api.get(BROADCASTS, key=key, expect=200))["items"] == []
    refused = await api.get(f"{BROADCASTS}?sender_id={api.admin.id}", key=key, expect=403)
    assert refused["error"]["details"][0]["loc"] == ["query", "sender_id"]


async def test_unknown_broadcast_query_parameters_are_named(api: Api) -> None:
    """A typo in a filter is a 422 naming it, not a silently ignored parameter."""
    answer = await api.get(f"{BROADCASTS}?search=x", expect=422)
    assert answer["error"]["details"][0]["loc"] == ["query", "search"]


# --- send_at -----------------------------------------------------------------------------------


async def test_a_past_send_at_is_refused_naming_the_field(api: Api, sim: TelegramSimulator) -> None:
    """send_at 2020-01-01 is a 422 on send_at, and nothing is queued."""
    ids = await _people(api, sim, 1)
    answer = await api.post(
        MESSAGES, json=_compose(ids, send_at="2020-01-01T10:00:00Z"), expect=422
    )
    assert answer["error"]["details"][0]["loc"] == ["body", "send_at"]
    assert "past" in answer["error"]["message"]
    assert (await api.get(BROADCASTS, expect=200))["items"] == []


async def test_a_naive_send_at_is_refused_naming_the_field(
    api: Api, sim: TelegramSimulator
) -> None:
    """A time without its offset is ambiguous: a 422 on send_at."""
    ids = await _people(api, sim, 1)
    answer = await api.post(MESSAGES, json=_compose(ids, send_at="2030-01-01T10:00:00"), expect=422)
    assert answer["error"]["details"][0]["loc"] == ["body", "send_at"]


async def test_a_past_send_at_sends_now_when_asked_and_says_so(
    api: Api, sim: TelegramSimulator
) -> None:
    """With send_now_if_past the broadcast goes at once; the answer's send_at is what is stored."""
    ids = await _people(api, sim, 1)
    answer = await api.post(
        MESSAGES,
        json=_compose(ids, send_at="2020-01-01T10:00:00Z", send_now_if_past=True),
        expect=202,
    )
    assert answer["send_at"] is None and answer["status"] == "queued"
    stored = await api.get(f"{BROADCASTS}/{answer['broadcast_id']}", expect=200)
    assert stored["send_at"] is None


async def test_a_future_send_at_is_answered_as_stored(api: Api, sim: TelegramSimulator) -> None:
    """The 202's send_at is the broadcast's own, in UTC."""
    ids = await _people(api, sim, 1)
    later = (api.clock() + timedelta(days=1)).replace(microsecond=0)
    answer = await api.post(MESSAGES, json=_compose(ids, send_at=later.isoformat()), expect=202)
    stored = await api.get(f"{BROADCASTS}/{answer['broadcast_id']}", expect=200)
    assert answer["status"] == stored["status"] == "scheduled"
    assert answer["send_at"].replace("+00:00", "Z") == stored["send_at"].replace("+00:00", "Z")


# --- recall ------------------------------------------------------------------------------------


async def _recalled(api: Api, bid: str) -> dict[str, object]:
    answer = await api.post(f"{BROADCASTS}/{bid}/recall", expect=202)
    await api.dispatcher.drain()
    return dict(answer)


async def _deliveries(api: Api, message_id: int) -> list[dict[str, object]]:
    page = await api.get(f"{MESSAGES}/{message_id}/recipients?limit=100", expect=200)
    return list(page["items"])


async def test_recall_deletes_every_delivered_telegram_message(
    api: Api, sim: TelegramSimulator
) -> None:
    """After a recall the chats no longer show the notice and each delivery says recalled."""
    ids = await _people(api, sim, 3)
    bid = await _send(api, ids, channels=["telegram"])
    await api.dispatcher.drain()
    answer = await _recalled(api, bid)
    assert answer["to_delete"] == 3 and answer["cancelled"] == 0
    for i in range(3):
        (sent,) = sim.messages_to(CHAT_BASE + i)
        assert sim.is_deleted(CHAT_BASE + i, sent.message_id)
    after = await api.get(f"{BROADCASTS}/{bid}", expect=200)
    telegram = after["messages"][0]
    assert telegram["counters"] == {"recalled": 3}
    (recall,) = after["recalls"]
    assert recall["counters"] == {"success": 3} and recall["status"] == "done"
    assert recall["recalls_message_id"] == telegram["message_id"]
    details = {d["status_detail"] for d in await _deliveries(api, telegram["message_id"])}
    assert details == {"recalled: deleted from the chat"}


async def test_recall_cancels_what_is_still_pending(api: Api, sim: TelegramSimulator) -> None:
    """A scheduled broadcast recalled is cancelled on every channel; nothing reaches a chat."""
    ids = await _people(api, sim, 2)
    later = (api.clock() + timedelta(hours=2)).isoformat()
    bid = await _send(api, ids, send_at=later)
    answer = await _recalled(api, bid)
    assert answer["cancelled"] == 4 and answer["to_delete"] == 0
    assert answer["broadcast"]["status"] == "cancelled"  # type: ignore[index]
    assert all(not sim.messages_to(CHAT_BASE + i) for i in range(2))


async def test_a_recall_tells_the_webhook_each_recalled_delivery(
    api: Api, sim: TelegramSimulator
) -> None:
    """An endpoint wanting delivery.recalled hears of each recalled notice, by its delivery id."""
    ids = await _people(api, sim, 2)
    await api.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["delivery.recalled"]},
        expect=201,
    )
    bid = await _send(api, ids, channels=["telegram"])
    await api.dispatcher.drain()
    await _recalled(api, bid)
    telegram = (await api.get(f"{BROADCASTS}/{bid}", expect=200))["messages"][0]
    delivered = {d["id"] for d in await _deliveries(api, telegram["message_id"])}
    async with api.db.sessions() as session:
        events = list(await session.scalars(select(WebhookEvent)))
    assert {e.event_type for e in events} == {"delivery.recalled"}
    assert {e.payload["delivery_id"] for e in events} == delivered
    for event in events:
        assert event.payload["status"] == "recalled"
        assert event.payload["channel"] == "telegram"
        assert event.payload["broadcast_id"] == bid
        assert event.payload["message_id"] == telegram["message_id"]


async def test_a_send_in_flight_at_the_recall_is_deleted_once_delivered(
    api: Api, sim: TelegramSimulator
) -> None:
    """A notice still on its way when the broadcast is recalled is deleted once it lands."""
    ids = await _people(api, sim, 1)
    sim.hold_next("sendMessage")
    bid = await _send(api, ids, channels=["telegram"])
    sending = asyncio.create_task(api.dispatcher.drain())
    await sim.wait_held(1)
    answer = await api.post(f"{BROADCASTS}/{bid}/recall", expect=202)
    assert (answer["cancelled"], answer["to_delete"], answer["in_flight"]) == (0, 0, 1)
    sim.release_held()
    await sending
    (sent,) = sim.messages_to(CHAT_BASE)
    assert not sim.is_deleted(CHAT_BASE, sent.message_id)
    async with api.db.sessions.begin() as session:
        assert await recall_late_deliveries(session, api.clock()) == 1
    await api.dispatcher.drain()
    assert sim.is_deleted(CHAT_BASE, sent.message_id)
    after = await api.get(f"{BROADCASTS}/{bid}", expect=200)
    assert after["messages"][0]["counters"] == {"recalled": 1}
    assert after["recalls"][0]["counters"] == {"success": 1}
    async with api.db.sessions.begin() as session:
        assert await recall_late_deliveries(session, api.clock()) == 0  # never twice


async def test_recall_records_telegrams_refusal_after_48_hours(
    api: Api, sim: TelegramSimulator, sim_clock: EpochClock
) -> None:
    """Past Telegram's 48 hours the message stays delivered, with the refusal as its detail."""
    ids = await _people(api, sim, 2)
    bid = await _send(api, ids, channels=["telegram"])
    await api.dispatcher.drain()
    sim_clock.now += 49 * 3600
    await _recalled(api, bid)
    after = await api.get(f"{BROADCASTS}/{bid}", expect=200)
    telegram = after["messages"][0]
    assert telegram["counters"] == {"success": 2}
    assert after["recalls"][0]["counters"] == {"failed": 2}
    details = {d["status_detail"] for d in await _deliveries(api, telegram["message_id"])}
    assert details == {"not recalled: Bad Request: message can't be deleted for everyone"}
    for i in range(2):
        (sent,) = sim.messages_to(CHAT_BASE + i)
        assert not sim.is_deleted(CHAT_BASE + i, sent.message_id)


async def test_a_message_the_person_deleted_counts_as_recalled(
    api: Api, sim: TelegramSimulator
) -> None:
    """A notice already gone from the chat is recalled all the same, and says so."""
    ids = await _people(api, sim, 1)
    bid = await _send(api, ids, channels=["telegram"])
    await api.dispatcher.drain()
    (sent,) = sim.messages_to(CHAT_BASE)
    async with aiohttp.ClientSession() as http:
        deleted = await http.post(
            f"{sim.base_url}{sim.token}/deleteMessage",
            json={"chat_id": CHAT_BASE, "message_id": sent.message_id},
        )
        assert deleted.status == 200
    await _recalled(api, bid)
    after = await api.get(f"{BROADCASTS}/{bid}", expect=200)
    telegram = after["messages"][0]
    assert telegram["counters"] == {"recalled": 1}
    (delivery,) = await _deliveries(api, telegram["message_id"])
    assert delivery["status_detail"] == "recalled: already deleted from the chat"


async def test_a_second_recall_is_refused_and_the_audit_log_names_the_first(
    api: Api, sim: TelegramSimulator
) -> None:
    """Nothing is recalled twice: the second ask is a 409; the audit log has the first."""
    ids = await _people(api, sim, 1)
    bid = await _send(api, ids, channels=["telegram"])
    await api.dispatcher.drain()
    await _recalled(api, bid)
    again = await api.post(f"{BROADCASTS}/{bid}/recall", expect=409)
    assert "nothing to recall" in again["error"]["message"]
    events = await api.get("/api/v1/audit?action=broadcast.recalled", expect=200)
    (event,) = events["items"]
    assert event["detail"]["telegram_messages_to_delete"] == 1
    assert event["detail"]["broadcast_id"] == bid
