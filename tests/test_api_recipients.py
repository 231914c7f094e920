"""Recipients over the admin API: CRUD with E.164 numbers, filters, owner scoping, CSV import,
and typologies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_support import Api, running_api
from tests.conftest import Database

CUSTOMERS = "/api/v1/recipients/customer"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def test_create_normalises_the_phone_and_checks_the_email(api: Api) -> None:
    """Numbers are stored in E.164; a bad number or email is a 422 naming the field."""
    created = await api.post(
        CUSTOMERS,
        json={"name": "Nina", "sms": "333 123 4567", "email": "n@example.org"},
        expect=201,
    )
    assert created["sms"] == "+393331234567" and created["kind"] == "customer"
    assert created["owner_id"] is None  # a superuser creating for nobody in particular
    bad_phone = await api.post(CUSTOMERS, json={"name": "X", "sms": "12"}, expect=422)
    assert bad_phone["error"]["details"][0]["loc"] == ["body", "sms"]
    bad_email = await api.post(CUSTOMERS, json={"name": "X", "email": "a@b"}, expect=422)
    assert bad_email["error"]["details"][0]["loc"] == ["body", "email"]
    no_name = await api.post(CUSTOMERS, json={"sms": "3331234567"}, expect=422)
    assert no_name["error"]["details"][0]["loc"] == ["body", "name"]
    unknown_typology = await api.post(CUSTOMERS, json={"name": "X", "typology_id": 9}, expect=422)
    assert unknown_typology["error"]["details"][0]["loc"] == ["body", "typology_id"]
    await api.post("/api/v1/recipients/robot", json={"name": "X"}, expect=404)


async def test_read_patch_delete_a_recipient(api: Api) -> None:
    """PATCH changes only the fields sent (the number normalised again); DELETE removes it."""
    created = await api.post(CUSTOMERS, json={"name": "Ugo", "note": "vip"}, expect=201)
    path = f"{CUSTOMERS}/{created['id']}"
    patched = await api.call("PATCH", path, json={"sms": "+39 333 765 4321"}, expect=200)
    assert patched["sms"] == "+393337654321" and patched["note"] == "vip"
    cleared = await api.call("PATCH", path, json={"sms": None}, expect=200)
    assert cleared["sms"] is None
    await api.call("PATCH", path, json={"name": None}, expect=422)
    assert (await api.get(path, expect=200))["name"] == "Ugo"
    await api.call("DELETE", path, expect=200)
    await api.get(path, expect=404)


async def test_filters_find_by_name_channel_and_typology(api: Api) -> None:
    """Name search, has_telegram/has_email/has_sms, blocked and typology narrow the list."""
    vip = await api.post(CUSTOMERS + "/typologies", json={"name": "VIP"}, expect=201)
    await api.post(
        CUSTOMERS,
        json={"name": "Anna 100%", "email": "a@example.org", "typology_id": vip["id"]},
        expect=201,
    )
    await api.post(
        CUSTOMERS, json={"name": "Bruno", "telegram_chat_id": 42, "telegram_blocked": True}
    )
    await api.post(CUSTOMERS, json={"name": "Carla", "sms": "3331234567"}, expect=201)

    async def names(query: str) -> list[str]:
        page = await api.get(f"{CUSTOMERS}?{query}", expect=200)
        return [r["name"] for r in page["items"]]

    assert await names("q=AR") == ["Carla"]
    assert await names("q=100%25") == ["Anna 100%"]
    assert await names("has_telegram=true") == ["Bruno"]
    assert await names("has_email=false") == ["Bruno", "Carla"]
    assert await names("has_sms=1") == ["Carla"]
    assert await names("blocked=true") == ["Bruno"]
    assert await names(f"typology_id={vip['id']}") == ["Anna 100%"]
    page = await api.get(f"{CUSTOMERS}?limit=2", expect=200)
    assert page["next_offset"] == 2


async def test_users_see_and_change_only_their_own_recipients(api: Api) -> None:
    """Another user's recipient is not found for reading, changing or deleting."""
    alice, alice_key = await api.user("alice")
    _, bob_key = await api.user("bob")
    mine = await api.post(CUSTOMERS, key=alice_key, json={"name": "Mine"}, expect=201)
    assert mine["owner_id"] == alice.id
    path = f"{CUSTOMERS}/{mine['id']}"
    await api.get(path, key=bob_key, expect=404)
    await api.call("PATCH", path, key=bob_key, json={"name": "Stolen"}, expect=404)
    await api.call("DELETE", path, key=bob_key, expect=404)
    assert (await api.get(CUSTOMERS, key=bob_key, expect=200))["items"] == []
    assert len((await api.get(CUSTOMERS, key=alice_key, expect=200))["items"]) == 1
    forbidden = await api.post(CUSTOMERS + "/typologies", key=alice_key, json={"name": "T"})
    assert forbidden["error"]["code"] == "forbidden"


async def test_naming_another_owner_is_refused_not_rewritten(api: Api) -> None:
    """A user who is not a superuser naming someone else's owner_id gets 403 naming the field
    (create, change, import, filter); naming themselves is fine; a superuser may name anyone."""
    alice, alice_key = await api.user("alice")
    bob, _ = await api.user("bob")
    refused = await api.post(
        CUSTOMERS, key=alice_key, json={"name": "X", "owner_id": bob.id}, expect=403
    )
    assert refused["error"]["details"][0]["loc"] == ["body", "owner_id"]
    assert "owner_id" in refused["error"]["message"]
    mine = await api.post(
        CUSTOMERS, key=alice_key, json={"name": "Mine", "owner_id": alice.id}, expect=201
    )
    assert mine["owner_id"] == alice.id
    path = f"{CUSTOMERS}/{mine['id']}"
    for owner in (bob.id, None):
        refused = await api.call("PATCH", path, key=alice_key, json={"owner_id": owner}, expect=403)
        assert refused["error"]["details"][0]["loc"] == ["body", "owner_id"]
    await api.call("PATCH", path, key=alice_key, json={"owner_id": alice.id}, expect=200)
    csv_text = f"name,owner_id\nOne,{alice.id}\nTwo,{bob.id}\n"
    refused = await api.post(
        CUSTOMERS + "/import",
        key=alice_key,
        data=csv_text,
        headers={"Content-Type": "text/csv"},
        expect=403,
    )
    assert "line 3" in refused["error"]["message"]
    filtered = await api.get(f"{CUSTOMERS}?owner_id={bob.id}", key=alice_key, expect=403)
    assert filtered["error"]["details"][0]["loc"] == ["query", "owner_id"]
    await api.get(f"/api/v1/messages?sender_id={bob.id}", key=alice_key, expect=403)
    await api.get(f"/api/v1/messages?sender_id={alice.id}", key=alice_key, expect=200)
    names = {r["name"] for r in (await api.get(CUSTOMERS, key=alice_key))["items"]}
    assert names == {"Mine"}  # the refused import wrote nothing
    given = await api.post(CUSTOMERS, json={"name": "For Bob", "owner_id": bob.id}, expect=201)
    assert given["owner_id"] == bob.id
    imported = await api.post(
        CUSTOMERS + "/import",
        data=f"name,owner_id\nAlso Bob,{bob.id}\nNobody,999999\n",
        headers={"Content-Type": "text/csv"},
        expect=200,
    )
    assert [r["status"] for r in imported["rows"]] == ["created", "rejected"]
    assert imported["rows"][1]["errors"][0]["field"] == "owner_id"


async def test_csv_import_reports_created_updated_and_rejected_rows(api: Api) -> None:
    """Good rows are written, bad ones come back with line and reason; ids update records."""
    await api.post(CUSTOMERS + "/typologies", json={"name": "Retail"}, expect=201)
    existing = await api.post(CUSTOMERS, json={"name": "Old name"}, expect=201)
    csv_text = (
        "name,phone,email,typology,id,colour\n"
        "Anna,333 111 2222,anna@example.org,retail,,red\n"
        ",3331112222,,,,\n"
        "Bad phone,12,,,,\n"
        "Bad email,,not-an-email,,,\n"
        "Unknown typology,,,Wholesale,,\n"
        f"New name,,,,{existing['id']},\n"
        "Ghost,,,,999999,\n"
    )
    report = await api.post(
        CUSTOMERS + "/import",
        data=csv_text.encode(),
        headers={"Content-Type": "text/csv"},
        expect=200,
    )
    assert (report["created"], report["updated"], report["rejected"]) == (1, 1, 5)
    assert report["match"] == "id" and report["delimiter"] == ","
    assert report["ignored_columns"] == ["colour"]
    rejected = {r["line"]: r["errors"][0]["field"] for r in report["rows"] if r["errors"]}
    assert rejected == {3: "name", 4: "sms", 5: "email", 6: "typology", 8: "id"}
    anna = (await api.get(CUSTOMERS + "?q=Anna", expect=200))["items"][0]
    assert anna["sms"] == "+393331112222" and anna["typology_id"] is not None
    assert (await api.get(f"{CUSTOMERS}/{existing['id']}", expect=200))["name"] == "New name"


async def test_csv_import_all_or_nothing_writes_nothing_on_a_bad_row(api: Api) -> None:
    """With all_or_nothing one bad row means 422 and no change; multipart uploads work too."""
    form = aiohttp.FormData()
    form.add_field("file", b"name,sms\nGood,3331234567\nBad,12\n", filename="people.csv")
    report = await api.post(CUSTOMERS + "/import?all_or_nothing=true", data=form, expect=422)
    assert report["applied"] is False and report["rejected"] == 1
    assert (await api.get(CUSTOMERS, expect=200))["items"] == []
    no_name = await api.post(
        CUSTOMERS + "/import", data=b"sms\n333\n", headers={"Content-Type": "text/csv"}
    )
    assert no_name["error"]["code"] == "validation_error"


async def _import(api: Api, data: bytes, query: str = "", expect: int = 200) -> dict[str, Any]:
    path = CUSTOMERS + "/import" + query
    report: dict[str, Any] = await api.post(
        path, data=data, headers={"Content-Type": "text/csv"}, expect=expect
    )
    return report


async def test_a_second_import_of_a_spreadsheet_updates_instead_of_duplicating(api: Api) -> None:
    """An Italian spreadsheet (; and a BOM) imports; again: unchanged; edited: updated."""
    sheet = "\ufeffexternal_id;Nome;Telefono;email\nC-1;Anna Rossi;333 111 2222;anna@example.org\n"
    sheet += "C-2;Bruno Bianchi;333 222 3333;\n"
    first = await _import(api, sheet.encode())
    assert (first["created"], first["match"], first["delimiter"]) == (2, "external_id", ";")
    assert first["columns"] == ["external_id", "name", "sms", "email"]
    again = await _import(api, sheet.encode())
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    edited = sheet.replace("anna@example.org", "anna.rossi@example.org")
    edited += "C-3;Carla Verdi;;\nC-3;Carla Due;;\n"
    third = await _import(api, edited.encode())
    assert (third["created"], third["updated"], third["unchanged"], third["rejected"]) == (
        1,
        1,
        1,
        1,
    )
    rows = {r["line"]: r for r in third["rows"]}
    assert rows[2]["status"] == "updated" and rows[2]["changed"] == ["email"]
    assert rows[5]["errors"][0] == {"field": "external_id", "message": "line 4 already names 'C-3'"}
    listed = (await api.get(CUSTOMERS, expect=200))["items"]
    assert sorted(r["external_id"] for r in listed) == ["C-1", "C-2", "C-3"]


async def test_import_matches_on_phone_when_asked_and_refuses_ambiguity(api: Api) -> None:
    """match=phone updates the record with that number; two records with it are rejected."""
    await api.post(CUSTOMERS, json={"name": "Old", "sms": "3331112222"}, expect=201)
    for name in ("Twin A", "Twin B"):
        await api.post(CUSTOMERS, json={"name": name, "sms": "3339998888"}, expect=201)
    sheet = b"name\tphone\nNew\t+39 333 111 2222\nTwin\t3339998888\n"
    report = await _import(api, sheet, "?match=phone")
    assert (report["updated"], report["rejected"], report["delimiter"]) == (1, 1, "\t")
    assert "matches 2 customer records" in report["rows"][1]["errors"][0]["message"]
    names = sorted(r["name"] for r in (await api.get(CUSTOMERS, expect=200))["items"])
    assert names == ["New", "Twin A", "Twin B"]
    missing = await _import(api, b"name\nX\n", "?match=email", expect=422)
    assert "no 'email' column" in missing["error"]["message"]


async def test_external_id_is_unique_per_owner_over_the_api(api: Api) -> None:
    """A second recipient with the same external_id is a 409 naming the first."""
    first = await api.post(CUSTOMERS, json={"name": "A", "external_id": "X1"}, expect=201)
    again = await api.post(CUSTOMERS, json={"name": "B", "external_id": "X1"}, expect=409)
    assert f"customer {first['id']}" in again["error"]["message"]
    _, alice_key = await api.user("alice")
    mine = await api.post(CUSTOMERS, json={"name": "C", "external_id": "X1"}, key=alice_key)
    assert mine["external_id"] == "X1" and mine["owner_id"] is not None


async def test_moving_a_recipient_to_an_owner_with_its_external_id_is_a_409(api: Api) -> None:
    """A PATCH giving a recipient to an owner who already has its external_id is a 409, not
    a 500; the recipient keeps its owner."""
    alice, alice_key = await api.user("alice")
    await api.post(CUSTOMERS, json={"name": "Hers", "external_id": "X9"}, key=alice_key)
    mine = await api.post(CUSTOMERS, json={"name": "Mine", "external_id": "X9"}, expect=201)
    clash = await api.call(
        "PATCH", f"{CUSTOMERS}/{mine['id']}", json={"owner_id": alice.id}, expect=409
    )
    assert "X9" in clash["error"]["message"]
    kept = await api.get(f"{CUSTOMERS}/{mine['id']}", expect=200)
    assert kept["owner_id"] == mine["owner_id"]


async def test_typology_crud_per_kind_and_for_messages(api: Api) -> None:
    """Typologies are created, renamed, listed and deleted; a duplicate name is a 409."""
    for base in (CUSTOMERS + "/typologies", "/api/v1/message-typologies"):
        created = await api.post(base, json={"name": "News", "description": "d"}, expect=201)
        await api.post(base, json={"name": "news"}, expect=409)
        path = f"{base}/{created['id']}"
        renamed = await api.call("PATCH", path, json={"name": "Alerts"}, expect=200)
        assert renamed["name"] == "Alerts" and renamed["description"] == "d"
        assert [t["name"] for t in (await api.get(base, expect=200))["items"]] == ["Alerts"]
        await api.call("DELETE", path, expect=200)
        await api.get(path, expect=404)
