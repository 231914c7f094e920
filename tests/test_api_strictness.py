"""The API takes what its document says and nothing else: no coercion, no silent extras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_support import Api, running_api
from tests.conftest import Database


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


def _named(answer: dict[str, Any], *loc: str) -> bool:
    return any(d["loc"][: len(loc)] == list(loc) for d in answer["error"]["details"])


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/invoices?start=0", "start"),
        ("/api/v1/invoices?end=20240101", "end"),
        ("/api/v1/invoices?start=0100-01-01", "start"),
        ("/api/v1/messages?created_from=0", "created_from"),
        ("/api/v1/messages?created_from=2024-01-01T00:00:00", "created_from"),
        ("/api/v1/messages?created_to=2024-01-01", "created_to"),
        ("/api/v1/recipients/customer?has_email=yes", "has_email"),
        ("/api/v1/recipients/customer?limit=1_0", "limit"),
        ("/api/v1/recipients/customer?limit=%201", "limit"),
        ("/api/v1/recipients/customer?search=ada", "search"),
        ("/api/v1/messages/1?verbose=true", "verbose"),
        ("/api/v1/recipients/customer?limit=1&limit=2", "limit"),
    ],
)
async def test_query_values_are_parsed_as_documented(api: Api, path: str, field: str) -> None:
    """Dates are ISO, date-times carry an offset, booleans are true/false; unknown or repeated
    parameters are refused by name instead of ignored."""
    answer = await api.get(path, expect=422)
    assert _named(answer, "query", field), answer


async def test_documented_query_spellings_are_accepted(api: Api) -> None:
    """The spellings the document promises work: ISO dates and offsets, true/false/1/0."""
    await api.get("/api/v1/invoices?start=2024-01-01&end=2024-04-01", expect=200)
    await api.get("/api/v1/messages?created_from=2024-01-01T00:00:00%2B01:00", expect=200)
    await api.get("/api/v1/messages?created_to=2024-01-01T00:00:00Z&limit=5", expect=200)
    for spelling in ("true", "false", "1", "0", "TRUE"):
        await api.get(f"/api/v1/recipients/customer?has_email={spelling}", expect=200)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/invoices/mark-invoiced",
            {"period_start": "2024-01-01", "sender_id": 1, "channel": "sms", "force": 0},
            "force",
        ),
        (
            "/api/v1/invoices/mark-invoiced",
            {"period_start": 0, "sender_id": 1, "channel": "sms"},
            "period_start",
        ),
        (
            "/api/v1/invoices/mark-invoiced",
            {"period_start": "2024-01-01", "sender_id": "1", "channel": "sms"},
            "sender_id",
        ),
        ("/api/v1/recipients/customer", {"name": "Ada", "telegram_blocked": "false"}, None),
        ("/api/v1/recipients/customer", {"name": "Ada", "nickname": "A"}, "nickname"),
        ("/api/v1/recipients/customer", {"name": ""}, "name"),
        (
            "/api/v1/messages",
            {"channels": ["storage"], "body": "hi", "send_at": "2030-01-01T09:00:00"},
            "send_at",
        ),
        (
            "/api/v1/messages",
            {"channels": ["storage"], "body": "hi", "send_at": "9100-01-01T09:00:00Z"},
            "send_at",
        ),
    ],
)
async def test_json_bodies_are_strict(
    api: Api, path: str, body: dict[str, Any], field: str | None
) -> None:
    """0 is not false or a date, "1" is not 1; unknown fields and bad values are named."""
    answer = await api.post(path, json=body, expect=422)
    assert _named(answer, "body", field or next(k for k in body if k != "name")), answer


async def test_an_integral_number_is_an_integer(api: Api) -> None:
    """JSON has one number type: 5.0 is the integer 5 (as JSON Schema says)."""
    typology = await api.post("/api/v1/recipients/customer/typologies", json={"name": "T"})
    created = await api.post(
        "/api/v1/recipients/customer",
        json={"name": "Ada", "typology_id": float(typology["id"])},
        expect=201,
    )
    assert created["typology_id"] == typology["id"]


async def test_patch_nulls_are_refused_where_the_document_says_so(api: Api) -> None:
    """`name: null` on PATCH is a 422 naming name, and the document does not allow null there;
    fields the document marks nullable are cleared by null."""
    created = await api.post(
        "/api/v1/recipients/customer", json={"name": "Ada", "email": "ada@example.org"}
    )
    path = f"/api/v1/recipients/customer/{created['id']}"
    refused = await api.call("PATCH", path, json={"name": None}, expect=422)
    assert _named(refused, "body", "name"), refused
    cleared = await api.call("PATCH", path, json={"email": None}, expect=200)
    assert cleared["email"] is None
    document = await api.get("/api/v1/openapi.json", expect=200)
    patch = document["components"]["schemas"]["RecipientPatch"]["properties"]
    assert "anyOf" not in patch["name"] and patch["name"]["type"] == "string"
    assert {"type": "null"} in patch["email"]["anyOf"]


async def test_multipart_errors_in_a_part_are_422_naming_it(api: Api) -> None:
    """A well-formed multipart body whose payload is not JSON is a 422 naming payload; a part
    the document does not list is a 422 naming that part."""
    form = aiohttp.FormData()
    form.add_field("payload", "not json", content_type="application/json")
    answer = await api.post("/api/v1/messages", data=form, expect=422)
    assert _named(answer, "body", "payload"), answer
    form = aiohttp.FormData()
    form.add_field("file", "name\nAda\n", content_type="text/csv")
    form.add_field("extra", "x")
    answer = await api.post("/api/v1/recipients/customer/import", data=form, expect=422)
    assert _named(answer, "body", "extra"), answer


async def test_the_document_states_the_date_range_and_the_composer_rules(api: Api) -> None:
    """Date ranges, the not-blank body (or a template), unique channels and the email subject
    rule are in the document, so a client can check a request before sending it."""
    document = await api.get("/api/v1/openapi.json", expect=200)
    compose = document["components"]["schemas"]["ComposeBody"]
    send_at = next(o for o in compose["properties"]["send_at"]["anyOf"] if o.get("type") != "null")
    assert send_at["pattern"].startswith("^(19[7-9]")
    # A body, unless a template gives it.
    assert "body" in compose["properties"] and compose["properties"]["body"]["allOf"]
    assert compose["properties"]["channels"]["uniqueItems"] is True
    assert compose["then"]["required"] == ["subject"]
    assert compose["properties"]["recipients"]["propertyNames"]["enum"] == [
        "customer",
        "external_subject",
    ]
