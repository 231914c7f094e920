"""Saved message templates over the admin API: CRUD, versions, owner scoping, validation, and
broadcasts sent from a template (recording which version, with the caller's edits on top)."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from persistence.models import MessageTypology
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.factories import make_customers

TEMPLATES = "/api/v1/templates"
MESSAGES = "/api/v1/messages"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


def _template(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Office closed",
        "subject": "Office closed",
        "body": "The office is **closed** on Friday.",
        "format": "markdown",
        "buttons": [[{"label": "Hours", "url": "https://example.com/hours"}]],
        "per_channel": {"sms": {"body": "Office closed on Friday."}},
    }
    return base | fields


async def _typology(api: Api, name: str = "News") -> int:
    async with api.db.sessions.begin() as session:
        typology = MessageTypology(name=name)
        session.add(typology)
    return int(typology.id)


async def _customer(api: Api, owner: int | None = None) -> int:
    (c,) = await make_customers(
        api.db.sessions,
        1,
        owner_id=owner,
        email=lambda i: "ada@example.com",
        sms=lambda i: "+393331234567",
        telegram_chat_id=lambda i: 42,
    )
    return int(c.id)


async def test_create_read_and_list_a_template(api: Api) -> None:
    """A new template is at version 1; it reads back in full and is found by name and typology."""
    news = await _typology(api)
    created = await api.post(TEMPLATES, json=_template(typology_id=news), expect=201)
    assert created["current_version"] == created["version"] == 1
    assert created["owner_id"] == api.admin.id
    assert created["per_channel"] == {
        "sms": {
            "subject": None,
            "body": "Office closed on Friday.",
            "body_html": None,
            "format": None,
            "buttons": None,
        }
    }
    read = await api.get(f"{TEMPLATES}/{created['id']}", expect=200)
    assert read["body"] == "The office is **closed** on Friday."
    assert [v["version"] for v in read["versions"]] == [1]
    await api.post(TEMPLATES, json=_template(name="Reminder"), expect=201)
    found = await api.get(f"{TEMPLATES}?q=closed", expect=200)
    assert [t["name"] for t in found["items"]] == ["Office closed"]
    typed = await api.get(f"{TEMPLATES}?typology_id={news}", expect=200)
    assert [t["id"] for t in typed["items"]] == [created["id"]]
    everything = await api.get(TEMPLATES, expect=200)
    assert [t["name"] for t in everything["items"]] == ["Office closed", "Reminder"]


async def test_editing_makes_a_new_version_and_old_ones_stay_readable(api: Api) -> None:
    """PUT and a PATCH of the content each write the next version; earlier versions read back
    as they were; renaming alone writes no version."""
    tid = (await api.post(TEMPLATES, json=_template(), expect=201))["id"]
    put = await api.call(
        "PUT", f"{TEMPLATES}/{tid}", json=_template(body="Closed **all week**."), expect=200
    )
    assert put["current_version"] == 2 and put["body"] == "Closed **all week**."
    patched = await api.call(
        "PATCH", f"{TEMPLATES}/{tid}", json={"subject": "Closed again"}, expect=200
    )
    assert patched["current_version"] == 3
    assert patched["subject"] == "Closed again" and patched["body"] == "Closed **all week**."
    renamed = await api.call("PATCH", f"{TEMPLATES}/{tid}", json={"name": "Closure"}, expect=200)
    assert renamed["current_version"] == 3 and renamed["name"] == "Closure"
    first = await api.get(f"{TEMPLATES}/{tid}/versions/1", expect=200)
    assert first["version"] == 1 and first["body"] == "The office is **closed** on Friday."
    assert [v["version"] for v in first["versions"]] == [1, 2, 3]
    await api.get(f"{TEMPLATES}/{tid}/versions/9", expect=404)


async def test_names_are_unique_per_owner(api: Api) -> None:
    """A second template of the same name (any case) is a 409; another user may use the name."""
    await api.post(TEMPLATES, json=_template(), expect=201)
    clash = await api.post(TEMPLATES, json=_template(name="OFFICE CLOSED"), expect=409)
    assert "Office closed" in clash["error"]["message"] or "OFFICE" in clash["error"]["message"]
    _, bob = await api.user("bob")
    await api.post(TEMPLATES, json=_template(), key=bob, expect=201)


async def test_another_users_template_is_not_found(api: Api) -> None:
    """Bob's template is a 404 for Carol on every route and missing from her list; a superuser
    sees it."""
    _, bob = await api.user("bob")
    _, carol = await api.user("carol")
    tid = (await api.post(TEMPLATES, json=_template(), key=bob, expect=201))["id"]
    await api.get(f"{TEMPLATES}/{tid}", key=carol, expect=404)
    await api.get(f"{TEMPLATES}/{tid}/versions/1", key=carol, expect=404)
    await api.call("PUT", f"{TEMPLATES}/{tid}", json=_template(), key=carol, expect=404)
    await api.call("PATCH", f"{TEMPLATES}/{tid}", json={"name": "x"}, key=carol, expect=404)
    await api.call("DELETE", f"{TEMPLATES}/{tid}", key=carol, expect=404)
    assert (await api.get(TEMPLATES, key=carol, expect=200))["items"] == []
    await api.get(f"{TEMPLATES}/{tid}", expect=200)  # the admin is a superuser


async def test_invalid_templates_are_422_naming_the_field(api: Api) -> None:
    """A missing body, an unknown field, bad markup in one channel's own body and an unknown
    typology are each refused naming the field."""
    no_body = _template()
    del no_body["body"]
    answer = await api.post(TEMPLATES, json=no_body, expect=422)
    assert answer["error"]["details"][0]["loc"] == ["body", "body"]
    answer = await api.post(TEMPLATES, json=_template(colour="red"), expect=422)
    assert "colour" in answer["error"]["message"]
    bad = _template(per_channel={"telegram": {"body": "<b>open", "format": "html"}})
    answer = await api.post(TEMPLATES, json=bad, expect=422)
    assert answer["error"]["message"].startswith("per_channel.telegram.body:")
    answer = await api.post(TEMPLATES, json=_template(typology_id=999), expect=422)
    assert answer["error"]["message"].startswith("typology_id:")
    answer = await api.get(f"{TEMPLATES}?search=x", expect=422)
    assert "search" in answer["error"]["message"]


async def test_a_broadcast_from_a_template_records_it_and_each_channel_gets_its_own_text(
    api: Api,
) -> None:
    """Sent with template_id, each channel's message has the template's text (SMS its own) and
    names the template and version; the broadcast shows them too."""
    news = await _typology(api)
    tid = (await api.post(TEMPLATES, json=_template(typology_id=news), expect=201))["id"]
    cid = await _customer(api)
    sent = await api.post(
        MESSAGES,
        json={
            "channels": ["email", "sms"],
            "template_id": tid,
            "recipients": {"customer": [cid]},
        },
        expect=202,
    )
    by_channel = {m["channel"]: m["id"] for m in sent["messages"]}
    email = await api.get(f"{MESSAGES}/{by_channel['email']}", expect=200)
    sms = await api.get(f"{MESSAGES}/{by_channel['sms']}", expect=200)
    assert email["subject"] == "Office closed"
    assert email["body"] == "The office is **closed** on Friday."
    assert email["extra"]["format"] == "markdown" and email["extra"]["buttons"]
    assert sms["body"] == "Office closed on Friday."
    assert (email["template_id"], email["template_version"]) == (tid, 1)
    assert (sms["template_id"], sms["typology_id"]) == (tid, news)
    broadcast = await api.get(f"/api/v1/broadcasts/{sent['broadcast_id']}", expect=200)
    assert (broadcast["template_id"], broadcast["template_version"]) == (tid, 1)


async def test_fields_given_with_a_template_replace_its_own_on_every_channel(api: Api) -> None:
    """Choose a template, edit, send: the given body replaces the template's (SMS's own too);
    an earlier version can be chosen by number."""
    tid = (await api.post(TEMPLATES, json=_template(), expect=201))["id"]
    await api.call("PUT", f"{TEMPLATES}/{tid}", json=_template(subject="Version two"), expect=200)
    cid = await _customer(api)
    sent = await api.post(
        MESSAGES,
        json={
            "channels": ["email", "sms"],
            "template_id": tid,
            "template_version": 1,
            "body": "Closed on Friday and Monday.",
            "format": "text",
            "recipients": {"customer": [cid]},
        },
        expect=202,
    )
    for queued in sent["messages"]:
        message = await api.get(f"{MESSAGES}/{queued['id']}", expect=200)
        assert message["body"] == "Closed on Friday and Monday."
        assert message["template_version"] == 1
        if message["channel"] == "email":
            assert message["subject"] == "Office closed"
            assert "format" not in message["extra"]


async def test_a_template_the_caller_cannot_see_or_a_missing_version_is_refused(api: Api) -> None:
    """Sending from another user's template, or from a version that does not exist, is a 422
    naming template_id or template_version; nothing is queued."""
    _, bob = await api.user("bob")
    tid = (await api.post(TEMPLATES, json=_template(), expect=201))["id"]
    cid = await _customer(api)
    request = {"channels": ["email"], "template_id": tid, "recipients": {"customer": [cid]}}
    answer = await api.post(MESSAGES, json=request, key=bob, expect=422)
    assert answer["error"]["details"][0]["loc"] == ["body", "template_id"]
    answer = await api.post(MESSAGES, json=request | {"template_version": 5}, expect=422)
    assert answer["error"]["details"][0]["loc"] == ["body", "template_version"]
    answer = await api.post(
        MESSAGES, json={"channels": ["email"], "recipients": {"customer": [cid]}}, expect=422
    )
    assert answer["error"]["message"].startswith(("body:", "subject:"))
    assert (await api.get(MESSAGES, expect=200))["items"] == []


async def test_deleting_a_template_keeps_what_was_sent_and_is_audited(api: Api) -> None:
    """A deleted template is gone; the broadcast sent from it keeps its text and no longer names
    it; creating, editing and deleting are in the audit log."""
    tid = (await api.post(TEMPLATES, json=_template(), expect=201))["id"]
    await api.call("PATCH", f"{TEMPLATES}/{tid}", json={"body": "Closed."}, expect=200)
    cid = await _customer(api)
    sent = await api.post(
        MESSAGES,
        json={"channels": ["email"], "template_id": tid, "recipients": {"customer": [cid]}},
        expect=202,
    )
    await api.call("DELETE", f"{TEMPLATES}/{tid}", expect=200)
    await api.get(f"{TEMPLATES}/{tid}", expect=404)
    message = await api.get(f"{MESSAGES}/{sent['messages'][0]['id']}", expect=200)
    assert message["body"] == "Closed." and message["template_id"] is None
    events = await api.get("/api/v1/audit?subject_kind=template", expect=200)
    assert sorted(e["action"] for e in events["items"]) == [
        "template.created",
        "template.deleted",
        "template.updated",
    ]


def _readme_examples() -> list[dict[str, Any]]:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- templates-example:", 1)[1].split("```", 2)[1]
    bodies = []
    for command in block.split("curl ")[1:]:
        argv = shlex.split(command.replace("\\\n", " "))
        bodies.append(dict(json.loads(argv[argv.index("-d") + 1])))
    return bodies


async def test_the_readme_example_works_as_written(api: Api) -> None:
    """The README's template is accepted, and its send from the template plans email and SMS
    with the template's text (presend)."""
    template, send = _readme_examples()
    created = await api.post(TEMPLATES, json=template, expect=201)
    assert send["template_id"] == 1  # the first template of a fresh database
    send["template_id"] = created["id"]
    cid = await _customer(api)
    send["recipients"] = {"customer": [cid]}
    plan = await api.post(MESSAGES, json=send, expect=200)
    by_channel = {c["channel"]: c for c in plan["channels"]}
    assert by_channel["email"]["valid"] == by_channel["sms"]["valid"] == 1
    assert by_channel["sms"]["sms"]["characters"] == len("Office closed on Friday.")
