"""Channel preferences on the console's recipient page: shown, edited, audited, owner-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from persistence.models import AuditEvent, MessageTypology
from persistence.preferences import list_preferences
from persistence.users import user_by_name
from tests.conftest import Database
from tests.console_support import Console, running_console
from tests.factories import make_customers


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(db, tmp_path) as running:
        yield running


async def _alices_customer(console: Console) -> int:
    async with console.api.db.sessions() as session:
        alice = await user_by_name(session, "alice")
    assert alice is not None
    (made,) = await make_customers(console.api.db.sessions, 1, name="Ada", owner_id=alice.id)
    return made.id


async def test_the_recipient_page_edits_preferences_per_typology(console: Console) -> None:
    """The owner refuses email and Telegram news on the recipient page; the page shows the
    choices again, they are stored as staff's, and the audit log names the user."""
    alice = await console.user("alice")
    rid = await _alices_customer(console)
    async with console.api.db.sessions.begin() as session:
        news = MessageTypology(name="News")
        session.add(news)
        await session.flush()
        news_id = news.id
    page = await alice.get(f"/recipients/customer/{rid}/edit")
    assert page.status == 200 and page.has("Channel preferences") and "News" in page.text
    saved = await alice.post(
        f"/recipients/customer/{rid}/preferences",
        {
            "pref-email-all": "refuse",
            f"pref-telegram-{news_id}": "refuse",
            "pref-sms-all": "accept",
        },
    )
    assert saved.status == 200 and saved.has("Channel preferences of Ada saved.")
    assert 'name="pref-email-all"' in saved.text
    assert '<option value="refuse" selected>' in saved.text
    async with console.api.db.sessions() as session:
        choices = await list_preferences(session, "customer", rid)
        events = list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "preferences.changed")
                )
            ).scalars()
        )
    assert [(c.channel, c.typology_id, c.accepted, c.source) for c in choices] == [
        ("email", None, False, "staff"),
        ("telegram", news_id, False, "staff"),
    ]
    assert [(e.actor_kind, e.actor_label, e.detail["via"]) for e in events] == [
        ("user", "alice", "console")
    ]


async def test_another_user_cannot_see_or_change_them(console: Console) -> None:
    """Bob gets 404 for Alice's recipient's preferences, and nothing changes."""
    await console.add_user("alice")
    bob = await console.user("bob")
    rid = await _alices_customer(console)
    refused = await bob.post(
        f"/recipients/customer/{rid}/preferences", {"pref-email-all": "refuse"}
    )
    assert refused.status == 404
    async with console.api.db.sessions() as session:
        assert await list_preferences(session, "customer", rid) == []


async def test_the_preferences_are_in_italian_for_an_italian_user(console: Console) -> None:
    """The section and its choices are translated."""
    alice = await console.user("alice")
    rid = await _alices_customer(console)
    await alice.post("/language", {"language": "it", "next": "/"})
    page = await alice.get(f"/recipients/customer/{rid}/edit")
    assert page.has("Preferenze dei canali") and page.has("rifiuta")
