"""An external subject acting for a customer: linked and unlinked through the API and the CLI,
checked against what the caller may see, and followed by include_related."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api_support import Api, running_api
from tests.cli_support import Herald
from tests.conftest import Database

CUSTOMERS = "/api/v1/recipients/customer"
SUBJECTS = "/api/v1/recipients/external_subject"


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def test_a_subject_is_linked_to_a_customer_and_unlinked(api: Api) -> None:
    """related_customer_id is set on create, shown on read and cleared with null."""
    customer = await api.post(CUSTOMERS, json={"name": "Rossi Srl"}, expect=201)
    subject = await api.post(
        SUBJECTS,
        json={"name": "Studio Bianchi", "related_customer_id": customer["id"]},
        expect=201,
    )
    assert subject["related_customer_id"] == customer["id"]
    path = f"{SUBJECTS}/{subject['id']}"
    assert (await api.get(path, expect=200))["related_customer_id"] == customer["id"]
    cleared = await api.call("PATCH", path, json={"related_customer_id": None}, expect=200)
    assert cleared["related_customer_id"] is None


async def test_a_link_to_a_missing_or_hidden_customer_is_refused(api: Api) -> None:
    """A customer that does not exist, or belongs to someone else, is a 422 on the field."""
    _, key = await api.user("clerk")
    theirs = await api.post(CUSTOMERS, json={"name": "Not yours"}, expect=201)
    for customer_id in (theirs["id"], 99_999):
        refused = await api.post(
            SUBJECTS, key=key, json={"name": "S", "related_customer_id": customer_id}, expect=422
        )
        assert refused["error"]["details"][0]["loc"] == ["body", "related_customer_id"]
        assert f"no customer with id {customer_id}" in refused["error"]["message"]


async def test_a_customer_cannot_act_for_a_customer(api: Api) -> None:
    """Only external subjects carry the link: on a customer it is a 422 naming the field."""
    other = await api.post(CUSTOMERS, json={"name": "A"}, expect=201)
    refused = await api.post(
        CUSTOMERS, json={"name": "B", "related_customer_id": other["id"]}, expect=422
    )
    assert refused["error"]["details"][0]["loc"] == ["body", "related_customer_id"]


async def test_a_send_to_the_customer_reaches_the_linked_subject(api: Api) -> None:
    """With include_related, a message to the customer also goes to the subject acting for it."""
    customer = await api.post(CUSTOMERS, json={"name": "Rossi Srl"}, expect=201)
    subject = await api.post(SUBJECTS, json={"name": "Studio"}, expect=201)
    await api.call(
        "PATCH",
        f"{SUBJECTS}/{subject['id']}",
        json={"related_customer_id": customer["id"]},
        expect=200,
    )
    plan = await api.post(
        "/api/v1/messages?presend=true",
        json={"channels": ["storage"], "body": "Hi", "recipients": {"customer": [customer["id"]]}},
        expect=200,
    )
    assert plan["recipients"] == 2


async def test_the_cli_links_and_unlinks_a_subject(herald: Herald) -> None:
    """`--related-customer ID` links, `--related-customer ''` unlinks, a word is a usage error."""
    customer = await herald.json("recipients", "add", "--name", "Rossi Srl")
    subject = await herald.json(
        "recipients",
        "add",
        "--kind",
        "external_subject",
        "--name",
        "Studio",
        "--related-customer",
        str(customer["id"]),
    )
    assert subject["related_customer_id"] == customer["id"]
    unlinked = await herald.json(
        "recipients",
        "update",
        "--kind",
        "external_subject",
        str(subject["id"]),
        "--related-customer",
        "",
    )
    assert unlinked["related_customer_id"] is None
    bad = await herald("recipients", "add", "--name", "X", "--related-customer", "rossi")
    assert bad.code == 2 and "--related-customer" in bad.err
    refused = await herald("recipients", "add", "--name", "X", "--related-customer", "1")
    assert refused.code == 1 and "a customer does not act for a customer" in refused.err
