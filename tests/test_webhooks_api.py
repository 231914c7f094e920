"""Webhook endpoints over the API and the CLI: CRUD with the secret shown once, SSRF refusals
naming `url`, owner scoping, the audit log and the test ping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channels.webhook_channel import WebhookConfig, WebhookSender
from channels.webhook_urls import UrlPolicy
from tests.api_support import Api, running_api
from tests.cli_support import Herald
from tests.conftest import Database
from tests.webhook_support import readme_verify, receiver

HOOKS = "/api/v1/webhooks"
PUBLIC = "https://93.184.215.14/herald"  # a public address literal: no DNS in tests


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:  # not sandbox: no loopback
        yield running


@pytest.fixture
async def sandbox_api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path, webhook_policy=UrlPolicy(allow_loopback=True)) as api:
        yield api


async def test_an_endpoint_is_created_read_changed_and_deleted(api: Api) -> None:
    """The secret is answered at creation only (generated when not given); list, read, patch
    and delete work on one's own endpoint."""
    _, key = await api.user("alice")
    made = await api.post(
        HOOKS, json={"url": PUBLIC, "events": ["delivery.failed"]}, key=key, expect=201
    )
    assert len(made["secret"]) >= 32 and made["active"] is True
    listed = await api.get(HOOKS, key=key, expect=200)
    assert [h["id"] for h in listed["items"]] == [made["id"]]
    assert "secret" not in listed["items"][0]
    one = await api.get(f"{HOOKS}/{made['id']}", key=key, expect=200)
    assert "secret" not in one and one["events"] == ["delivery.failed"]
    changed = await api.call(
        "PATCH",
        f"{HOOKS}/{made['id']}",
        json={"active": False, "events": ["broadcast.done", "sms.report"]},
        key=key,
        expect=200,
    )
    assert changed["active"] is False and changed["events"] == ["broadcast.done", "sms.report"]
    given = await api.post(
        HOOKS,
        json={"url": PUBLIC, "events": ["ping"], "secret": "x" * 20},
        key=key,
        expect=422,
    )
    assert given["error"]["details"][0]["loc"][:2] == ["body", "events"]
    await api.call("DELETE", f"{HOOKS}/{made['id']}", key=key, expect=200)
    await api.get(f"{HOOKS}/{made['id']}", key=key, expect=404)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/hook", "a private address"),
        ("https://127.0.0.1/hook", "a loopback address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://localhost/hook", "a loopback address"),
        ("https://[::1]/hook", "a loopback address"),
        ("https://224.0.0.1/hook", "a multicast address"),
        ("http://93.184.215.14/hook", "must be an https:// URL"),
        ("https://user:pw@93.184.215.14/hook", "must not carry credentials"),
    ],
)
async def test_inside_addresses_are_refused_outside_sandbox_mode(
    api: Api, url: str, reason: str
) -> None:
    """Server-side request forgery: each is a 422 naming `url`, and nothing is stored."""
    _, key = await api.user("alice")
    answer = await api.post(
        HOOKS, json={"url": url, "events": ["delivery.success"]}, key=key, expect=422
    )
    assert answer["error"]["details"][0]["loc"] == ["body", "url"]
    assert reason in answer["error"]["message"]
    assert (await api.get(HOOKS, key=key, expect=200))["items"] == []


async def test_sandbox_mode_allows_loopback_but_not_other_inside_addresses(
    sandbox_api: Api,
) -> None:
    """In sandbox mode a receiver on this machine is allowed, plain http too; 10.0.0.1 and
    169.254.169.254 still are not."""
    _, key = await sandbox_api.user("alice")
    events = ["delivery.success"]
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook"):
        await sandbox_api.post(HOOKS, json={"url": url, "events": events}, key=key, expect=201)
    for url in ("http://10.0.0.1/hook", "https://169.254.169.254/"):
        await sandbox_api.post(HOOKS, json={"url": url, "events": events}, key=key, expect=422)


async def test_another_users_endpoint_is_not_found(api: Api) -> None:
    """Bob cannot read, change, delete, list the events of or ping Alice's endpoint."""
    _, alice = await api.user("alice")
    _, bob = await api.user("bob")
    made = await api.post(HOOKS, json={"url": PUBLIC, "events": ["delivery.failed"]}, key=alice)
    path = f"{HOOKS}/{made['id']}"
    await api.get(path, key=bob, expect=404)
    await api.call("PATCH", path, json={"active": False}, key=bob, expect=404)
    await api.call("DELETE", path, key=bob, expect=404)
    await api.get(path + "/events", key=bob, expect=404)
    await api.post(path + "/test", key=bob, expect=404)
    assert (await api.get(HOOKS, key=bob, expect=200))["items"] == []
    await api.get(path, key=alice, expect=200)


async def test_creating_and_deleting_are_audited_without_the_secret(api: Api) -> None:
    """webhook.created and webhook.deleted name the endpoint, its host and events, never the
    secret or the URL's path."""
    _, key = await api.user("alice")
    secret = "a-very-secret-value-1234"
    url = "https://93.184.215.14/hook?token=query-secret"
    made = await api.post(
        HOOKS, json={"url": url, "events": ["delivery.failed"], "secret": secret}, key=key
    )
    await api.call("DELETE", f"{HOOKS}/{made['id']}", key=key, expect=200)
    log = await api.get("/api/v1/audit?subject_kind=webhook", expect=200)
    assert [e["action"] for e in log["items"]] == ["webhook.deleted", "webhook.created"]
    assert log["items"][1]["detail"]["host"] == "93.184.215.14"
    assert secret not in str(log) and "query-secret" not in str(log)


async def test_the_test_ping_reaches_the_receiver_signed(sandbox_api: Api) -> None:
    """POST .../test queues a ping that the sender delivers, signed with the secret."""
    _, key = await sandbox_api.user("alice")
    async with receiver() as target:
        made = await sandbox_api.post(
            HOOKS, json={"url": target.url, "events": ["broadcast.done"]}, key=key, expect=201
        )
        queued = await sandbox_api.post(f"{HOOKS}/{made['id']}/test", key=key, expect=202)
        config = WebhookConfig(policy=UrlPolicy(allow_loopback=True))
        hooks = WebhookSender(sandbox_api.db.sessions, config, sandbox_api.clock)
        assert await hooks.run_once() == 1
    (got,) = target.received
    assert got.event["type"] == "ping" and got.event["id"] == queued["event_id"]
    assert readme_verify()(made["secret"], got.headers, got.body)
    log = await sandbox_api.get(f"{HOOKS}/{made['id']}/events", key=key, expect=200)
    (event,) = log["items"]
    assert event["status"] == "delivered" and event["attempt_log"][0]["status_code"] == 200


async def test_the_cli_creates_lists_shows_events_and_deletes(herald: Herald) -> None:
    """`herald webhooks create` prints the secret once; list, events and delete follow; a
    loopback URL is fine in sandbox mode, 10.0.0.1 is refused naming --url."""
    made = await herald.json(
        "webhooks", "create", "--url", "http://127.0.0.1:9/h", "--event", "delivery.failed"
    )
    assert len(made["secret"]) >= 32
    listed = (await herald.json("webhooks", "list"))["items"]
    assert [h["id"] for h in listed] == [made["id"]] and "secret" not in listed[0]
    assert (await herald.json("webhooks", "events", str(made["id"])))["items"] == []
    refused = await herald(
        "webhooks", "create", "--url", "https://10.0.0.1/h", "--event", "delivery.failed"
    )
    assert refused.code == 2 and "--url" in refused.err and "private" in refused.err
    assert (await herald("webhooks", "delete", str(made["id"]))).code == 0
    assert (await herald("webhooks", "delete", str(made["id"]))).code != 0
    assert (await herald.json("webhooks", "list"))["items"] == []
