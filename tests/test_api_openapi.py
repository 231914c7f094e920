"""The OpenAPI document: valid, complete (every route of the app), and true to the server.

The fuzz run serves the app on a real loopback port, seeds recipients, typologies and messages,
and runs the schemathesis command line against it with every check and every phase: answers must
use documented statuses, content types, headers and schemas; requests the document calls invalid
must be refused and those it calls valid accepted; nothing may be a 5xx or log an ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.core.result import Ok

from admin_api.recipient_input import CSV_COLUMNS
from tests.api_support import Api, running_api
from tests.conftest import Database

# Every operation, every phase: five generated examples each keep the run near a minute a database.
EXAMPLES_PER_OPERATION = 5
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


def _openapi_path(aiohttp_path: str) -> str:
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", aiohttp_path)


async def test_document_lists_every_route_and_is_valid(db: Database, tmp_path: Path) -> None:
    """Every API route the app serves is in the document, which schemathesis loads as OpenAPI
    3.1 (the console's pages, named ``console.*``, are not part of the API)."""
    async with running_api(db, tmp_path) as api:
        document = await api.get("/api/v1/openapi.json", expect=200)
        served = {
            (route.method.lower(), _openapi_path(route.resource.canonical))
            for route in api.client.app.router.routes()
            if route.resource is not None
            and route.method != "HEAD"
            and not (route.resource.name or "").startswith("console.")
        }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == documented
    assert document["openapi"] == "3.1.0"
    for item in document["paths"].values():
        for operation in item.values():
            assert "500" in operation["responses"]
    schema = schemathesis.openapi.from_dict(document)
    operations = [_operation(result) for result in schema.get_all_operations()]
    assert len(operations) == len(documented)
    csv_import = document["paths"]["/api/v1/recipients/{kind}/import"]["post"]
    for column in CSV_COLUMNS:  # the accepted CSV columns are documented where clients look
        assert f"`{column}`" in csv_import["description"], column


def _operation(result: Any) -> Any:
    assert isinstance(result, Ok), f"invalid operation in the document: {result}"
    return result.ok()


async def _seed(api: Api) -> dict[str, Any]:
    """Recipients, typologies, messages and users to fuzz with, and valid values the document
    cannot describe (see tests/schemathesis_hooks.py)."""
    clerk, _ = await api.user("clerk")
    typologies: dict[str, list[int]] = {"customer": [], "external_subject": [], "message": []}
    for kind, count in (("customer", 6), ("external_subject", 6)):
        for i in range(count):
            created = await api.post(
                f"/api/v1/recipients/{kind}/typologies", json={"name": f"{kind} {i}"}, expect=201
            )
            typologies[kind].append(created["id"])
    # More than the stateful phase tends to delete through its links: a compose request always
    # finds one left to name.
    for i in range(8):
        created = await api.post(
            "/api/v1/message-typologies", json={"name": f"news {i}"}, expect=201
        )
        typologies["message"].append(created["id"])
    recipients: dict[str, list[int]] = {"customer": [], "external_subject": []}
    for kind, count in (("customer", 12), ("external_subject", 6)):
        for i in range(count):
            created = await api.post(
                f"/api/v1/recipients/{kind}",
                json={
                    "name": f"{kind} {i}",
                    "sms": f"+39333{1000000 + i:07d}",
                    "email": f"{kind}{i}@example.org",
                    "telegram_chat_id": 7000 + i,
                    "typology_id": typologies[kind][i % len(typologies[kind])],
                },
                expect=201,
            )
            recipients[kind].append(created["id"])
    messages: list[int] = []
    broadcasts: list[str] = []
    for channels, subject in ((["storage"], ""), (["email", "sms"], "Seed")):
        sent = await api.post(
            "/api/v1/messages",
            json={
                "channels": channels,
                "subject": subject,
                "body": "Seed message",
                "recipients": {"customer": recipients["customer"][:6]},
            },
            expect=202,
        )
        messages += [m["id"] for m in sent["messages"]]
        broadcasts.append(sent["broadcast_id"])
    templates = [
        (
            await api.post(
                "/api/v1/templates",
                json={
                    "name": f"Seed template {i}",
                    "subject": "Seed",
                    "body": "Office closed on Friday.",
                    "per_channel": {"sms": {"body": "Office closed on Friday."}},
                },
                expect=201,
            )
        )["id"]
        for i in range(8)
    ]
    return {
        "users": [api.admin.id, clerk.id],
        "templates": templates,
        "typologies": typologies,
        "recipients": recipients,
        "messages": messages,
        "broadcasts": broadcasts,
        "phones": ["+393331234567", "+39 333 765 4321", "3339876543", "+12025550123"],
        "emails": ["ada@example.org", "grace.hopper@example.com", "x@sub.example.net"],
        "sms_texts": ["Office closed on Friday.", "Meeting moved to 10:00"],
        # Every column a match can name, so any documented match value is a valid request.
        "csv": "name,sms,email,external_id\nAda,+393331234567,ada@example.org,A1\n"
        "Alan,+393339876543,alan@example.org,A2\n",
    }


async def test_schemathesis_finds_the_server_true_to_its_document(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """schemathesis with every check and phase (coverage, fuzzing, stateful), on real ids:
    status codes, content types, headers and bodies as documented; invalid input refused and
    valid input accepted; no 5xx and no ERROR in the log."""

    async def skebby() -> dict[str, Any]:
        return {"money": "1.00", "sms": []}

    async with running_api(db, tmp_path, skebby_status=skebby) as api:
        pools = await _seed(api)
        pools_file = tmp_path / "pools.json"
        pools_file.write_text(json.dumps(pools))
        base_url = str(api.client.make_url("")).rstrip("/")
        with caplog.at_level(logging.WARNING):
            process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{base_url}/api/v1/openapi.json",
                "--url",
                base_url,
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {api.admin_key}",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "1",
                "--workers",
                "1",
                "--no-color",
                cwd=tmp_path,
                env={
                    **os.environ,
                    "SCHEMATHESIS_HOOKS": str(HOOKS),
                    "HERALD_FUZZ_POOLS": str(pools_file),
                },
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
        answered = _http_answers(api)
        requests = sum(answered.values())
        # Real ids: the routes of one message and one recipient answered 200, not only 404.
        read_message = answered.get(("/api/v1/messages/{message_id}", "200"), 0)
        read_recipient = answered.get(("/api/v1/recipients/{kind}/{recipient_id}", "200"), 0)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-20000:]
    assert requests > 1000, requests
    assert read_message > 0 and read_recipient > 0, (read_message, read_recipient)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def _http_answers(api: Api) -> dict[tuple[str, str], float]:
    """The service's own count of its answers (/metrics), by route and status."""
    return {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in api.context.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "herald_http_requests_total"
    }
