"""The OpenAPI document: valid, complete (every route of the app), and true to the server.

The fuzz run serves the app on a real loopback port and lets schemathesis generate requests
(valid and invalid) for every operation: no answer may be a 5xx, use an undocumented status or
content type, or break its documented schema.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api_support import running_api
from tests.conftest import Database
from tests.factories import make_customers

EXAMPLES_PER_OPERATION = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


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


def _operation(result: Any) -> Any:
    assert isinstance(result, Ok), f"invalid operation in the document: {result}"
    return result.ok()


def _fuzz(document: dict[str, Any], base_url: str, key: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = _operation(result)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            test = _property(operation.as_strategy(generation_mode=mode), base_url, headers)
            try:
                test()
            except Unsatisfiable:  # no input to make invalid (an operation without parameters)
                continue
            except Exception as exc:  # a schemathesis failure group: report it and go on
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
    return failures


def _property(strategy: Any, base_url: str, headers: dict[str, str]) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def test(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers)
        case.validate_response(response, checks=CHECKS)

    return test


async def test_fuzzing_the_document_finds_no_server_error(db: Database, tmp_path: Path) -> None:
    """Generated requests on every operation get documented, schema-conforming, non-5xx answers."""

    async def skebby() -> dict[str, Any]:
        return {"money": "1.00", "sms": []}

    async with running_api(db, tmp_path, skebby_status=skebby) as api:
        customers = await make_customers(db.sessions, 3, sms=lambda i: f"+3933300000{i}")
        await api.post("/api/v1/message-typologies", json={"name": "News"}, expect=201)
        await api.post(
            "/api/v1/messages",
            json={
                "channels": ["storage"],
                "body": "seed",
                "recipients": {"customer": [c.id for c in customers]},
            },
            expect=202,
        )
        document = await api.get("/api/v1/openapi.json", expect=200)
        base_url = str(api.client.make_url("")).rstrip("/")
        failures = await asyncio.to_thread(_fuzz, document, base_url, api.admin_key)
        requests = api.context.metrics.http_requests_total()
    assert not failures, "\n\n".join(failures)
    assert requests > 200, requests
