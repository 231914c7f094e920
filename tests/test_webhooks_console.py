"""The console's Webhooks page: add an endpoint (its secret shown once), see its attempts,
delete it; inside addresses refused; another user's endpoint not found; Italian too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channels.webhook_channel import WebhookConfig, WebhookSender
from channels.webhook_urls import UrlPolicy
from tests.conftest import Database
from tests.console_support import Console, running_console
from tests.webhook_support import receiver

LOOPBACK = UrlPolicy(allow_loopback=True)


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(db, tmp_path, webhook_policy=LOOPBACK) as running:
        yield running


async def test_a_webhook_is_added_shown_with_its_attempts_and_deleted(console: Console) -> None:
    """The secret appears on the creation page only; a ping's attempt shows on the endpoint's
    page; delete asks first, then the list is empty; the audit log has both."""
    alice = await console.user("alice")
    async with receiver() as target:
        page = await alice.get("/webhooks")
        assert page.status == 200 and page.has("No webhooks yet.")
        created = await alice.post(
            "/webhooks", {"url": target.url, "events": ["delivery.failed", "broadcast.done"]}
        )
        assert created.status == 200
        secret = re.search(r'id="new-secret">([^<]+)<', created.text)
        assert secret and len(secret.group(1)) >= 32
        listed = await alice.get("/webhooks")
        assert listed.has(target.url) and secret.group(1) not in listed.text
        hook_id = int(re.findall(r'href="/webhooks/(\d+)"', listed.text)[0])
        key = console.api.keys["alice"]
        await console.api.post(f"/api/v1/webhooks/{hook_id}/test", key=key, expect=202)
        hooks = WebhookSender(
            console.api.db.sessions, WebhookConfig(policy=LOOPBACK), console.api.clock
        )
        await hooks.run_once()
        events = await alice.get(f"/webhooks/{hook_id}")
        assert events.status == 200 and "ping" in events.text and "delivered" in events.text
        confirm = await alice.get(f"/webhooks/{hook_id}/delete")
        assert confirm.has("Delete the webhook?")
        done = await alice.post(f"/webhooks/{hook_id}/delete", {})
        assert done.status == 200 and done.has("The webhook is deleted.")
    log = await console.api.get("/api/v1/audit?subject_kind=webhook", expect=200)
    assert [e["action"] for e in log["items"]] == ["webhook.deleted", "webhook.created"]
    assert secret.group(1) not in str(log)


async def test_inside_addresses_and_other_users_endpoints_are_refused(console: Console) -> None:
    """10.0.0.1 is refused with the reason; bob gets 404 for alice's endpoint pages."""
    alice = await console.user("alice")
    refused = await alice.post("/webhooks", {"url": "https://10.0.0.1/h", "events": ["ping"]})
    assert refused.status == 422 and refused.has("Choose at least one event.")
    refused = await alice.post(
        "/webhooks", {"url": "https://10.0.0.1/h", "events": ["delivery.failed"]}
    )
    assert refused.status == 422 and refused.has("a private address")
    await alice.post("/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["delivery.failed"]})
    hook_id = int(re.findall(r'href="/webhooks/(\d+)"', (await alice.get("/webhooks")).text)[0])
    bob = await console.user("bob")
    assert (await bob.get(f"/webhooks/{hook_id}")).status == 404
    assert (await bob.get(f"/webhooks/{hook_id}/delete")).status == 404
    assert (await bob.post(f"/webhooks/{hook_id}/delete", {})).status == 404
    assert (await alice.get(f"/webhooks/{hook_id}")).status == 200
