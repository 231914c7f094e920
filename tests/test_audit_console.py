"""The audit log in the web console: what a signed-in person does is recorded under their name,
address and browser; the Audit page, with its filters, is for superusers only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from persistence.models import AuditEvent
from tests.conftest import Database
from tests.console_support import PASSWORD, Console, running_console
from tests.test_audit_api import audit_text
from tests.test_console_pages import _send


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(db, tmp_path) as running:
        yield running


async def _events(console: Console) -> list[AuditEvent]:
    async with console.api.db.sessions() as session:
        return list((await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars())


async def test_console_actions_are_recorded_under_the_person_and_shown(
    console: Console,
) -> None:
    """Adding, editing, importing, sending, cancelling, keys and deleting each leave a row that
    the Audit page lists and filters; the new key's secret is nowhere in the log."""
    root = await console.user("root", superuser=True)
    assert (await root.post("/recipients/customer/new", {"name": "Ada"})).status == 200
    (ada,) = [e.subject_ids.strip(",") for e in await _events(console)]
    await root.post(f"/recipients/customer/{ada}/edit", {"name": "Ada Lovelace"})
    await root.get("/recipients/customer/import")
    upload = aiohttp.FormData()
    upload.add_field("file", b"name\nGrace\n", filename="people.csv", content_type="text/csv")
    report = await root.post("/recipients/customer/import", upload)
    draft = re.search(r'name="draft" value="([^"]+)"', report.text)
    assert draft
    await root.post("/recipients/customer/import/confirm", {"draft": draft.group(1)})
    bid = await _send(root)
    assert (await root.post(f"/broadcasts/{bid}/cancel", {})).status == 200
    created = await root.post("/keys", {"name": "nightly"})
    key = re.search(r'id="new-key">(hk_[^<]+)<', created.text)
    assert key
    revoke = re.search(r'href="/keys/(\d+)/revoke"', (await root.get("/keys")).text)
    assert revoke
    await root.post(f"/keys/{revoke.group(1)}/revoke", {})
    await root.post(f"/recipients/customer/{ada}/delete", {})

    events = await _events(console)
    assert [e.action for e in events] == [
        "recipient.created",
        "recipient.updated",
        "recipients.imported",
        "broadcast.sent",
        "broadcast.cancelled",
        "api_key.created",
        "api_key.revoked",
        "recipient.deleted",
    ]
    assert {(e.actor_kind, e.actor_label, e.remote_addr) for e in events} == {
        ("user", "root", "127.0.0.1")
    }
    assert all(e.user_agent for e in events)
    assert events[1].detail == {"fields": ["name"]}
    text = await audit_text(console.api.db)
    assert key.group(1) not in text and PASSWORD not in text

    page = await root.get("/audit")
    assert page.status == 200 and page.has("Audit log")
    for event in events:
        assert event.action in page.text
    only = await root.get("/audit?action=broadcast.cancelled")
    assert "broadcast.cancelled" in only.text and "<code>recipient.created</code>" not in only.text
    about = await root.get(f"/audit?subject_kind=customer&subject_id={ada}")
    assert "<code>recipient.deleted</code>" in about.text
    assert "<code>api_key.created</code>" not in about.text
    assert "channels: storage;" in page.text  # lists read as lists, not as Python
    nobody = await root.get("/audit?actor=someone-else")
    assert nobody.has("No events match.")


async def test_the_audit_page_and_its_link_are_for_superusers_only(console: Console) -> None:
    """A clerk sees no Audit link and gets 403 on the page; a superuser sees both."""
    clerk = await console.user("clerk")
    root = await console.user("root", superuser=True)
    assert 'href="/audit"' not in (await clerk.get("/")).text
    refused = await clerk.get("/audit")
    assert refused.status == 403 and refused.has("Only a superuser sees the audit log.")
    assert 'href="/audit"' in (await root.get("/")).text
    italian = await root.get("/audit", headers={"Accept-Language": "it"})
    assert italian.has("Registro delle attività")
