"""Operations endpoints: liveness, readiness with failing checks, Prometheus metrics, Skebby
status, request ids, and the generic 500."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from persistence.api_keys import revoke_api_key
from tests.api_support import running_api
from tests.conftest import Database
from tests.factories import make_customers


async def _ok() -> bool:
    return True


async def _down() -> bool:
    raise OSError("connection refused")


async def _hangs() -> bool:
    await asyncio.Event().wait()
    return True


async def test_healthz_and_readyz_report_each_check(db: Database, tmp_path: Path) -> None:
    """/readyz is 503 naming the failing checks (errors and timeouts); /healthz stays 200."""
    async with running_api(db, tmp_path, readiness={"bot": _ok}) as api:
        assert (await api.get("/healthz", expect=200)) == {"status": "ok"}
        ready = await api.get("/readyz", expect=200)
        assert ready == {
            "status": "ready",
            "checks": {"database": True, "bot": True},
            "reasons": {},
            "breakers": {},
            "role": None,
            "leads": [],
        }
        api.context.breaker_states = lambda: {"telegram": "open", "email": "closed"}
        ready = await api.get("/readyz", expect=200)  # a provider outage is not ours: still ready
        assert ready["breakers"] == {"telegram": "open", "email": "closed"}
        api.context.readiness_checks = {"bot": _ok, "smtp": _down, "skebby": _hangs}
        api.context.readiness_timeout = 0.05
        async with api.client.get("/readyz") as response:  # public: no key needed
            assert response.status == 503
            body = await response.json()
        assert body["checks"] == {"database": True, "bot": True, "smtp": False, "skebby": False}
        assert body["reasons"] == {"skebby": "no answer within 0.05s"}


async def test_metrics_expose_deliveries_requests_and_queue_depth(
    db: Database, tmp_path: Path
) -> None:
    """The Prometheus text counts deliveries, latency, HTTP requests by route, and the queue."""
    async with running_api(db, tmp_path) as api:
        (customer,) = await make_customers(db.sessions, 1)
        await api.post(
            "/api/v1/messages",
            json={"channels": ["storage"], "body": "x", "recipients": {"customer": [customer.id]}},
            expect=202,
        )
        api.context.metrics.delivery("telegram", "success", 0.2)
        api.context.metrics.update_handled()
        await api.get("/api/v1/messages/12345", expect=404)
        async with api.client.get("/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            samples = exposition_samples(await response.text())
    assert (
        samples[("herald_deliveries_total", (("channel", "telegram"), ("status", "success")))] == 1
    )
    bucket = (("channel", "telegram"), ("le", "0.25"))
    assert samples[("herald_send_latency_seconds_bucket", bucket)] == 1
    assert samples[("herald_telegram_updates_total", ())] == 1
    route = (("route", "/api/v1/messages/{message_id}"), ("status", "404"))
    assert samples[("herald_http_requests_total", route)] == 1
    assert samples[("herald_queue_depth", (("channel", "storage"),))] == 1
    assert samples[("process_cpu_seconds_total", ())] > 0


def exposition_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_skebby_status_for_superusers_when_configured(db: Database, tmp_path: Path) -> None:
    """Credits come back as Skebby reports them; unconfigured is 503; others get 403."""

    async def status() -> dict[str, Any]:
        return {"money": "12.50", "sms": [{"type": "GP", "quantity": 208}]}

    async with running_api(db, tmp_path, skebby_status=status) as api:
        assert (await api.get("/api/v1/skebby/status", expect=200))["money"] == "12.50"
        _, key = await api.user("clerk")
        await api.get("/api/v1/skebby/status", key=key, expect=403)
        api.context.skebby_status = None
        unconfigured = await api.get("/api/v1/skebby/status", expect=503)
        assert unconfigured["error"]["code"] == "not_configured"


async def test_unexpected_errors_are_a_generic_500_with_the_request_id(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No traceback leaves the process: the body quotes the request id the log records."""

    async def broken() -> dict[str, Any]:
        raise ZeroDivisionError("secret detail")

    async with running_api(db, tmp_path, skebby_status=broken) as api:
        with caplog.at_level(logging.ERROR, logger="admin_api.errors"):
            async with api.client.get(
                "/api/v1/skebby/status",
                headers={**api.auth(api.admin_key), "X-Request-Id": "req-123"},
            ) as response:
                assert response.status == 500
                assert response.headers["X-Request-Id"] == "req-123"
                body = await response.json()
    assert body["error"]["code"] == "internal_error"
    assert "req-123" in body["error"]["message"]
    assert "secret detail" not in body["error"]["message"]
    assert "req-123" in caplog.text and "ZeroDivisionError" in caplog.text


async def test_revoked_key_is_refused(db: Database, tmp_path: Path) -> None:
    """Revoking a key locks it out (the test API runs without the key cache)."""
    async with running_api(db, tmp_path) as api:
        _, key = await api.user("temp")
        await api.get("/api/v1/messages", key=key, expect=200)
        async with db.sessions.begin() as session:
            assert await revoke_api_key(session, key[3:11]) == 1
        await api.get("/api/v1/messages", key=key, expect=401)


async def _raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)  # the server closes after answering
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"GET /api/v1/messages?q=" + b"x" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
            414,
            "uri_too_long",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n",
            431,
            "headers_too_large",
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Nul: \x00\r\n\r\n", 400, "bad_request"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    ],
    ids=["long-request-line", "long-header", "nul-in-header", "garbage"],
)
async def test_malformed_http_gets_a_json_error_without_a_traceback(
    db: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    status: int,
    code: str,
) -> None:
    """Requests aiohttp cannot parse get the JSON error shape (414/431/400) and no ERROR log."""
    async with running_api(db, tmp_path) as api:
        port = api.client.port
        assert port is not None
        with caplog.at_level(logging.INFO):
            answered, headers, body = await _raw_http(port, request_bytes)
    assert answered == status
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == code
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
