"""Channel preferences over the admin API: read, replace, owner scoping, field errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api_support import Api, running_api
from tests.conftest import Database

CUSTOMERS = "/api/v1/recipients/customer"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def test_put_replaces_the_choices_and_presend_honours_them(api: Api) -> None:
    """PUT sets "no email, except invoices"; GET shows it with the typology's name, presend
    refuses other email, and the audit log has the change."""
    invoices = await api.post("/api/v1/message-typologies", json={"name": "Invoices"}, expect=201)
    person = await api.post(
        CUSTOMERS, json={"name": "Anna", "email": "anna@example.org"}, expect=201
    )
    path = f"{CUSTOMERS}/{person['id']}/preferences"
    assert (await api.get(path, expect=200))["preferences"] == []
    body = {
        "preferences": [
            {"channel": "email", "typology_id": None, "accepted": False},
            {"channel": "email", "typology_id": invoices["id"], "accepted": True},
        ]
    }
    answer = await api.call("PUT", path, json=body, expect=200)
    assert [
        (p["channel"], p["typology_name"], p["accepted"], p["source"])
        for p in answer["preferences"]
    ] == [("email", None, False, "staff"), ("email", "Invoices", True, "staff")]
    assert (await api.get(path, expect=200))["preferences"] == answer["preferences"]
    send = {
        "channels": ["email"],
        "subject": "S",
        "body": "B",
        "recipients": {"customer": [person["id"]]},
    }
    plan = await api.post("/api/v1/messages?presend=true", json=send, expect=200)
    (problem,) = plan["channels"][0]["invalid_recipients"]
    assert problem["reason"] == "unsubscribed from email"
    typed = await api.post(
        "/api/v1/messages?presend=true", json={**send, "typology_id": invoices["id"]}, expect=200
    )
    assert typed["channels"][0]["valid"] == 1
    audit = await api.get(
        f"/api/v1/audit?action=preferences.changed&subject_id={person['id']}", expect=200
    )
    assert len(audit["items"]) == 1
    await api.call("PUT", path, json={"preferences": []}, expect=200)
    assert (await api.get(path, expect=200))["preferences"] == []


async def test_telegram_refusal_keeps_the_opted_out_flag_in_step(api: Api) -> None:
    """Refusing Telegram in general sets the recipient's telegram_opted_out, and lifting it
    clears the flag."""
    person = await api.post(CUSTOMERS, json={"name": "Bruno", "telegram_chat_id": 77}, expect=201)
    path = f"{CUSTOMERS}/{person['id']}"
    refuse = {"preferences": [{"channel": "telegram", "typology_id": None, "accepted": False}]}
    await api.call("PUT", path + "/preferences", json=refuse, expect=200)
    assert (await api.get(path, expect=200))["telegram_opted_out"] is True
    await api.call("PUT", path + "/preferences", json={"preferences": []}, expect=200)
    assert (await api.get(path, expect=200))["telegram_opted_out"] is False


async def test_only_the_owner_sees_and_changes_preferences(api: Api) -> None:
    """Another user's recipient is not found, for reading or changing its preferences."""
    _, alice_key = await api.user("alice")
    _, bob_key = await api.user("bob")
    mine = await api.post(CUSTOMERS, key=alice_key, json={"name": "Mine"}, expect=201)
    path = f"{CUSTOMERS}/{mine['id']}/preferences"
    await api.get(path, key=bob_key, expect=404)
    await api.call("PUT", path, key=bob_key, json={"preferences": []}, expect=404)
    await api.get(path, key=alice_key, expect=200)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"preferences": [{"channel": "fax", "accepted": False}]}, "channel"),
        ({"preferences": [{"channel": "sms", "accepted": "no"}]}, "accepted"),
        ({"preferences": [{"channel": "sms", "accepted": False, "why": 1}]}, "why"),
        (
            {"preferences": [{"channel": "sms", "typology_id": 999999, "accepted": False}]},
            "typology_id",
        ),
        (
            {
                "preferences": [
                    {"channel": "sms", "accepted": False},
                    {"channel": "sms", "accepted": True},
                ]
            },
            "1",
        ),
    ],
)
async def test_bad_choices_are_422_naming_the_field(
    api: Api, body: dict[str, object], loc: str
) -> None:
    """An unknown channel, a non-boolean, an unknown field, a missing typology or a repeated
    choice: 422, the field named, nothing changed."""
    person = await api.post(CUSTOMERS, json={"name": "Carla"}, expect=201)
    path = f"{CUSTOMERS}/{person['id']}/preferences"
    refused = await api.call("PUT", path, json=body, expect=422)
    locations = [str(part) for d in refused["error"]["details"] for part in d["loc"]]
    assert loc in locations
    assert (await api.get(path, expect=200))["preferences"] == []
