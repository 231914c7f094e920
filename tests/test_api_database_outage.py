"""The admin API while the database is away: 503 with Retry-After, one log line each way."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.database_faults import faulty_database

DATABASE_ROUTES = [
    ("GET", "/api/v1/messages", None),
    ("GET", "/api/v1/recipients/customer/{rid}", None),
    ("PATCH", "/api/v1/recipients/customer/{rid}", {"note": "changed"}),
    ("POST", "/api/v1/recipients/customer", {"name": "Grace"}),
    ("GET", "/api/v1/inbox", None),
    ("GET", "/api/v1/message-typologies", None),
    (
        "POST",
        "/api/v1/messages",
        {"channels": ["storage"], "body": "hi", "recipients": {"customer": [1]}},
    ),
]


async def _call(api: Api, method: str, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
    async with api.client.request(
        method, path, json=body, headers=api.auth(api.admin_key)
    ) as response:
        return response.status, dict(response.headers), await response.json()


async def test_every_route_answers_503_while_the_database_is_unreachable(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut database: JSON 503 + Retry-After naming the database, healthz 200; back: 200 again."""
    async with faulty_database(db, tmp_path) as faulty, running_api(faulty.db, tmp_path) as api:
        created = await api.post("/api/v1/recipients/customer", json={"name": "Ada"}, expect=201)
        caplog.set_level(logging.INFO)
        caplog.clear()
        await faulty.cut()
        for _round in range(3):
            for method, path, body in DATABASE_ROUTES:
                status, headers, answer = await _call(
                    api, method, path.format(rid=created["id"]), body
                )
                assert status == 503, (method, path, answer)
                assert headers["Retry-After"] == "5"
                assert answer["error"]["code"] == "database_unavailable"
                assert "database is unreachable" in answer["error"]["message"]
        assert await api.get("/healthz", expect=200) == {"status": "ok"}
        readiness = await api.get("/readyz", expect=503)
        assert readiness["checks"]["database"] is False
        metrics = await api.client.get("/metrics")
        # 21 answers, the readiness probe and this scrape's own queue depth.
        assert 'herald_database_unavailable_total{component="api"} 23.0' in await metrics.text()
        during = list(caplog.records)
        caplog.clear()

        await faulty.restore()
        again = await api.get(f"/api/v1/recipients/customer/{created['id']}", expect=200)
        assert again["name"] == "Ada"
        await api.get("/api/v1/messages", expect=200)
        await api.get("/readyz", expect=200)
        after = list(caplog.records)

    outage_lines = [r.getMessage() for r in during if r.name == "admin_api.outage"]
    assert len(outage_lines) == 1, outage_lines
    assert outage_lines[0].startswith("database unreachable: ")
    assert "503" in outage_lines[0]
    assert not [r for r in during if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in during
    ]
    recovered = [r.getMessage() for r in after if r.name == "admin_api.outage"]
    assert len(recovered) == 1, recovered
    assert recovered[0].startswith("database reachable again after ")
    assert "requests answered 503" in recovered[0]


async def test_a_connection_error_elsewhere_is_not_called_a_database_outage(
    db: Database, tmp_path: Path
) -> None:
    """Only the database's own connection errors are a 503: anything else stays a 500."""

    async def refused() -> dict[str, Any]:
        raise ConnectionRefusedError(111, "Connect call failed")

    async with running_api(db, tmp_path, skebby_status=refused) as api:
        failed = await api.get("/api/v1/skebby/status", expect=500)
        assert failed["error"]["code"] == "internal_error"
        sampled = api.context.metrics.registry.get_sample_value(
            "herald_database_unavailable_total", {"component": "api"}
        )
        assert not sampled
