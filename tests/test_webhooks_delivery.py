"""Delivery-status webhooks end to end: events written with the outcomes, signed, retried until
a loopback receiver takes them, and the sender's safety rules (SSRF, redirects, timeouts, size,
one endpoint never slowing another)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from channels.webhook_channel import WebhookConfig, WebhookSender
from channels.webhook_urls import UrlPolicy
from persistence import webhook_queries as sql
from persistence.models import MessageRecipient, WebhookAttempt, WebhookEvent
from persistence.recipient_kinds import default_registry
from persistence.sms_inbound import ReceivedSms, store_received_sms
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import make_customers
from tests.webhook_support import readme_verify, receiver

LOOPBACK = UrlPolicy(allow_loopback=True)
HOOKS = "/api/v1/webhooks"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path, webhook_policy=LOOPBACK) as running:
        yield running


def sender(api: Api, **config: Any) -> WebhookSender:
    values: dict[str, Any] = {
        "policy": LOOPBACK,
        "backoff_base_seconds": 1.0,
        "backoff_max_seconds": 4.0,
        "timeout_seconds": 2.0,
        "idle_poll_seconds": 0.05,
    } | config
    return WebhookSender(api.db.sessions, WebhookConfig(**values), api.clock)


async def register(api: Api, key: str, url: str, *events: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "events": list(events), **fields}
    answer: dict[str, Any] = await api.post(HOOKS, json=body, key=key, expect=201)
    return answer


async def broadcast(api: Api, key: str, owner_id: int, count: int) -> str:
    people = await make_customers(api.db.sessions, count, owner_id=owner_id)
    body = {
        "channels": ["storage"],
        "body": "Hello",
        "recipients": {"customer": [p.id for p in people]},
    }
    answer = await api.post("/api/v1/messages", json=body, key=key, expect=202)
    await api.dispatcher.drain()
    return str(answer["broadcast_id"])


async def stored_events(api: Api) -> list[WebhookEvent]:
    async with api.db.sessions() as session:
        return list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


async def until_settled(api: Api, hooks: WebhookSender, rounds: int = 40) -> None:
    """Attempt what is due, move the clock past the next back-off, until nothing is pending."""
    for _ in range(rounds):
        await hooks.run_once()
        if all(e.status in ("delivered", "failed") for e in await stored_events(api)):
            return
        api.clock.advance(10)
    raise AssertionError("events still pending")


async def test_a_receiver_down_for_a_while_receives_every_event_signed(api: Api) -> None:
    """A receiver answering 503 at first gets every delivery's event, and broadcast.done, once
    it recovers, each signed as the README's verification code checks."""

    async def flaky(_request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(status=503, text="busy") if n < 4 else web.Response(text="ok")

    user, key = await api.user("alice")
    async with receiver(flaky) as target:
        hook = await register(api, key, target.url, "delivery.success", "broadcast.done")
        broadcast_id = await broadcast(api, key, user.id, 3)
        events = await stored_events(api)
        assert sorted(e.event_type for e in events) == ["broadcast.done", *["delivery.success"] * 3]
        await until_settled(api, sender(api))
    verify = readme_verify()
    assert all(verify(hook["secret"], r.headers, r.body) for r in target.received)
    assert not verify("another secret, 16+", target.received[-1].headers, target.received[-1].body)
    delivered = {r.headers["Herald-Event-Id"] for r in target.received[4:]}
    assert delivered == {e.id for e in events}
    for r in target.received:
        assert r.event["id"] == r.headers["Herald-Event-Id"]
        assert r.event["data"]["broadcast_id"] == broadcast_id
    log = await api.get(f"{HOOKS}/{hook['id']}/events", key=key, expect=200)
    assert {e["status"] for e in log["items"]} == {"delivered"}
    codes = [a["status_code"] for e in log["items"] for a in e["attempt_log"]]
    assert sorted(codes) == [200] * 4 + [503] * 4


async def test_an_event_names_the_delivery_its_message_broadcast_and_outcome(api: Api) -> None:
    """An event's data says which delivery, message, broadcast, channel and recipient, and how."""
    user, key = await api.user("alice")
    await register(api, key, "http://127.0.0.1:9/hook", "delivery.success")
    broadcast_id = await broadcast(api, key, user.id, 1)
    async with api.db.sessions() as session:
        delivery = (await session.scalars(select(MessageRecipient))).one()
    (event,) = await stored_events(api)
    assert (event.event_type, event.status, event.attempts) == ("delivery.success", "pending", 0)
    assert event.payload == {
        "delivery_id": delivery.id,
        "message_id": delivery.message_id,
        "broadcast_id": broadcast_id,
        "channel": "storage",
        "recipient": {"kind": delivery.recipient_kind, "id": delivery.recipient_id},
        "status": "success",
        "detail": delivery.status_detail,
        "attempts": delivery.attempts,
    }


async def test_events_stop_after_max_attempts_with_every_attempt_recorded(api: Api) -> None:
    """A receiver that never recovers: the event fails for good after N attempts, each kept."""

    async def down(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=500)

    user, key = await api.user("alice")
    async with receiver(down) as target:
        await register(api, key, target.url, "delivery.success")
        await broadcast(api, key, user.id, 1)
        await until_settled(api, sender(api, max_attempts=3))
    (event,) = await stored_events(api)
    assert (event.status, event.attempts) == ("failed", 3)
    assert event.last_error is not None and "gave up after 3 attempts" in event.last_error
    async with api.db.sessions() as session:
        attempts = list(await session.scalars(select(WebhookAttempt.status_code)))
    assert attempts == [500, 500, 500]


async def test_a_client_error_fails_at_once(api: Api) -> None:
    """A 4xx (other than 408/429) is permanent: one attempt, no retry."""

    async def gone(_request: web.Request, _n: int) -> web.StreamResponse:
        return web.Response(status=410, text="no such hook")

    user, key = await api.user("alice")
    async with receiver(gone) as target:
        await register(api, key, target.url, "delivery.success")
        await broadcast(api, key, user.id, 1)
        await until_settled(api, sender(api))
    (event,) = await stored_events(api)
    assert (event.status, event.attempts, event.last_error) == (
        "failed",
        1,
        "HTTP 410: no such hook",
    )
    assert len(target.received) == 1


async def test_redirects_are_not_followed(api: Api) -> None:
    """A 302 is recorded as a failure; the place it points to is never called."""
    async with receiver(path="/elsewhere") as elsewhere:

        async def moved(_request: web.Request, _n: int) -> web.StreamResponse:
            raise web.HTTPFound(elsewhere.url)

        user, key = await api.user("alice")
        async with receiver(moved) as target:
            await register(api, key, target.url, "delivery.success")
            await broadcast(api, key, user.id, 1)
            await until_settled(api, sender(api))
    (event,) = await stored_events(api)
    assert event.status == "failed"
    assert event.last_error is not None and "redirects are not followed" in event.last_error
    assert elsewhere.received == []


async def test_a_slow_answer_times_out_and_a_huge_one_is_cut(api: Api) -> None:
    """A receiver that never answers is a timeout (tried again later); one that streams an
    endless body is read up to the cap and counts as delivered."""
    never = asyncio.Event()

    async def silent(_request: web.Request, _n: int) -> web.StreamResponse:
        await never.wait()
        return web.Response()

    async def endless(request: web.Request, _n: int) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        while True:  # until Herald hangs up
            await response.write(chunk)

    user, key = await api.user("alice")
    async with receiver(silent) as slow, receiver(endless) as big:
        await register(api, key, slow.url, "delivery.success")
        await register(api, key, big.url, "delivery.success")
        await broadcast(api, key, user.id, 1)
        hooks = sender(api, timeout_seconds=0.5, max_response_bytes=64 * 1024)
        await hooks.run_once()
        never.set()
    by_endpoint = {e.endpoint_id: e for e in await stored_events(api)}
    async with api.db.sessions() as session:
        endpoints = {e.url: e.id for e in await sql.list_endpoints(session, user.id)}
    timed_out = by_endpoint[endpoints[slow.url]]
    assert timed_out.status == "pending" and timed_out.last_error == "timed out after 0.5 s"
    assert by_endpoint[endpoints[big.url]].status == "delivered"


async def test_one_endpoint_down_does_not_delay_another(api: Api) -> None:
    """While one endpoint hangs on every request, another receives all its events."""
    release = asyncio.Event()

    async def hanging(_request: web.Request, _n: int) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    user, key = await api.user("alice")
    async with receiver(hanging) as stuck, receiver() as fine:
        a = await register(api, key, stuck.url, "delivery.success")
        b = await register(api, key, fine.url, "delivery.success")
        async with api.db.sessions.begin() as session:
            subs = await sql.subscriptions(session)
            for endpoint in (a, b):
                await sql.add_events(
                    session,
                    subs,
                    [sql.NewEvent(user.id, sql.PING_EVENT, {"n": i}) for i in range(20)],
                    api.clock(),
                    endpoint_ids=[endpoint["id"]],
                )
        hooks = sender(api, per_endpoint_concurrency=2, timeout_seconds=30.0)
        await hooks.start()
        try:
            await fine.wait_for(20)
            assert len(stuck.received) <= 2  # it holds only its own slots
        finally:
            release.set()
            await hooks.stop()


async def test_two_senders_share_the_events_without_doubles(api: Api) -> None:
    """Two senders (two processes) claiming at once post each event once."""
    user, key = await api.user("alice")
    async with receiver() as target:
        await register(api, key, target.url, "delivery.success")
        await broadcast(api, key, user.id, 30)
        first, second = sender(api, per_endpoint_concurrency=8), sender(api)
        await asyncio.gather(first.drain(), second.drain())
    ids = target.event_ids()
    assert len(ids) == len(set(ids)) == 30


def busy_sender(api: Api) -> WebhookSender:
    """A sender in a process that is sending deliveries all along."""
    config = sender(
        api, busy_concurrency=5, busy_round_seconds=0.0, per_endpoint_concurrency=8
    ).config
    return WebhookSender(api.db.sessions, config, api.clock, deliveries_busy=lambda: True)


async def test_while_deliveries_run_events_go_a_small_round_at_a_time(api: Api) -> None:
    """While its process sends a broadcast, the sender posts five events a round, each round
    recorded whole before the next, until every event has arrived."""
    user, key = await api.user("alice")
    async with receiver() as target:
        await register(api, key, target.url, "delivery.success")
        await broadcast(api, key, user.id, 12)
        hooks = busy_sender(api)
        rounds = []
        for _ in range(4):
            rounds.append(await hooks.run_once())
            events = await stored_events(api)
            assert sum(e.status == "delivered" for e in events) == sum(rounds)
    assert rounds == [5, 5, 2, 0]
    assert sorted(target.event_ids()) == sorted(e.id for e in events)


async def test_a_busy_senders_loop_records_every_round(api: Api) -> None:
    """The running sender, while deliveries go out, delivers and records every event."""
    user, key = await api.user("alice")
    async with receiver() as target:
        await register(api, key, target.url, "delivery.success")
        await broadcast(api, key, user.id, 12)
        hooks = busy_sender(api)
        await hooks.start()
        await target.wait_for(12)
        await hooks.stop()
    assert {e.status for e in await stored_events(api)} == {"delivered"}
    assert len(set(target.event_ids())) == 12


async def test_an_endpoint_resolving_inside_is_refused_at_send_time(api: Api) -> None:
    """Outside sandbox mode, an endpoint whose host resolves to loopback (stored before the
    check, or rebound since) fails without any request, the reason recorded."""
    user, key = await api.user("alice")
    async with receiver() as target:
        port = target.url.split(":")[2].split("/")[0]
        async with api.db.sessions.begin() as session:
            await sql.create_endpoint(
                session,
                owner_id=user.id,
                url=f"https://localhost:{port}/hook",
                events=["delivery.success"],
                secret="s" * 32,
            )
        await broadcast(api, key, user.id, 1)
        await until_settled(api, sender(api, policy=UrlPolicy()))
    (event,) = await stored_events(api)
    assert event.status == "failed" and event.attempts == 1
    assert event.last_error is not None and "a loopback address" in event.last_error
    assert target.received == []


async def test_events_are_only_for_the_owners_messages(api: Api) -> None:
    """Another user's broadcast, or the superuser's, writes no event for alice's endpoint."""
    alice, alice_key = await api.user("alice")
    bob, bob_key = await api.user("bob")
    async with receiver() as target:
        await register(api, alice_key, target.url, "delivery.success", "broadcast.done")
        await broadcast(api, bob_key, bob.id, 2)
        await broadcast(api, api.admin_key, api.admin.id, 2)
        assert await stored_events(api) == []
        await broadcast(api, alice_key, alice.id, 1)
    assert sorted(e.event_type for e in await stored_events(api)) == [
        "broadcast.done",
        "delivery.success",
    ]


async def test_a_cancel_tells_every_cancelled_delivery(api: Api) -> None:
    """Cancelling a scheduled broadcast is a delivery.cancelled event per delivery."""
    user, key = await api.user("alice")
    people = await make_customers(api.db.sessions, 3, owner_id=user.id)
    async with receiver() as target:
        await register(api, key, target.url, "delivery.cancelled")
        body = {
            "channels": ["storage"],
            "body": "Later",
            "recipients": {"customer": [p.id for p in people]},
            "send_at": (api.clock.now + timedelta(days=1)).isoformat(),
        }
        answer = await api.post("/api/v1/messages", json=body, key=key, expect=202)
        await api.post(f"/api/v1/broadcasts/{answer['broadcast_id']}/cancel", key=key, expect=200)
        await until_settled(api, sender(api))
    kinds = [r.event["type"] for r in target.received]
    assert kinds == ["delivery.cancelled"] * 3
    assert {r.event["data"]["recipient"]["id"] for r in target.received} == {p.id for p in people}


async def test_a_dead_senders_events_are_sent_once_its_lease_runs_out(api: Api) -> None:
    """Events claimed by a sender that died go out from another after the lease expires."""
    user, key = await api.user("alice")
    async with receiver() as target:
        await register(api, key, target.url, "delivery.success")
        await broadcast(api, key, user.id, 2)
        now = api.clock()
        async with api.db.sessions.begin() as session:
            (endpoint_id,) = await sql.due_endpoints(session, now)
            taken = await sql.claim(
                session,
                now=now,
                lease_until=now + timedelta(seconds=60),
                owner="dead",
                slots={endpoint_id: 10},
            )
        assert len(taken) == 2
        hooks = sender(api)
        assert await hooks.run_once() == 0  # still leased
        api.clock.advance(61)
        assert await hooks.rescue() == 2
        assert await hooks.run_once() == 2
    assert sorted(target.event_ids()) == sorted(e.id for e in taken)


async def test_a_received_sms_is_a_message_received_event_for_the_senders_owner(
    api: Api,
) -> None:
    """An SMS answer stored in a thread tells the endpoint of the person's owner, with the
    text and the sender, in the same transaction."""
    alice, key = await api.user("alice")
    (person,) = await make_customers(api.db.sessions, 1, owner_id=alice.id, sms="+393331234567")
    async with receiver() as target:
        await register(api, key, target.url, "message.received")
        async with api.db.sessions.begin() as session:
            sms = ReceivedSms("sk-1", "+393331234567", "Yes, thanks", api.clock())
            message_id, _ = await store_received_sms(session, default_registry(), sms)
        await until_settled(api, sender(api))
    (got,) = target.received
    assert got.event["type"] == "message.received"
    data = got.event["data"]
    assert (data["message_id"], data["body"], data["channel"]) == (message_id, "Yes, thanks", "sms")
    assert data["senders"] == [{"kind": "customer", "id": person.id}]
