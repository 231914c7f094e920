"""The admin API wired to a real database, a composer and a dispatcher, for the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from admin_api.app import create_app
from admin_api.context import ApiContext, ReadinessCheck, SkebbyStatus
from admin_api.metrics import Metrics
from admin_api.server import ApiRunner
from bot.delivery import build_channels, build_composer, build_dispatcher, unsubscribe_links
from channels.base import Channel
from channels.dispatcher import Dispatcher
from channels.webhook_urls import UrlPolicy
from persistence.api_keys import issue_api_key
from persistence.models import User
from persistence.recipient_kinds import default_registry
from tests.conftest import Database
from tests.factories import FakeClock, delivery_settings


class ApiTestServer(TestServer):
    """aiohttp's test server on the runner the service uses (JSON answers to malformed HTTP)."""

    async def _make_runner(self, **kwargs: Any) -> ApiRunner:
        return ApiRunner(self.app, **kwargs)


COSTS = {"sms": Decimal("0.05"), "email": Decimal("0.001")}


@dataclass
class Api:
    db: Database
    client: TestClient[Any, Any]
    context: ApiContext
    dispatcher: Dispatcher
    clock: FakeClock
    admin: User
    admin_key: str
    keys: dict[str, str] = field(default_factory=dict)

    async def user(self, username: str, *, superuser: bool = False) -> tuple[User, str]:
        """A user and a fresh API key for them."""
        async with self.db.sessions.begin() as session:
            issued = await issue_api_key(session, username, superuser=superuser)
        self.keys[username] = issued.key
        return issued.user, issued.key

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        expect: int | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = {**self.auth(key or self.admin_key), **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else None
            if expect is not None:
                assert response.status == expect, (response.status, body)
            return body

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.call("POST", path, **kwargs)


@asynccontextmanager
async def running_api(
    db: Database,
    tmp_path: Path,
    *,
    max_request_bytes: int = 1024 * 1024,
    max_attachment_bytes: int = 64 * 1024,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    skebby_status: SkebbyStatus | None = None,
    channels: Mapping[str, Channel] | None = None,
    webhook_policy: UrlPolicy | None = None,
) -> AsyncIterator[Api]:
    clock = FakeClock()
    registry = default_registry()
    settings = delivery_settings(
        db.url,
        tmp_path,
        dispatch_batch_size=100,
        dispatch_max_attempts=3,
        dispatch_lease_seconds=30,
        max_attachment_bytes=max_attachment_bytes,
        cost_sms=COSTS["sms"],
        cost_email=COSTS["email"],
    )
    links = unsubscribe_links(settings)
    all_channels: dict[str, Channel] = {
        **build_channels(
            settings, telegram=None, only=("storage", "email", "sms"), unsubscribe=links
        ),
        **(channels or {}),
    }
    dispatcher = build_dispatcher(settings, db.sessions, all_channels, clock)
    composer = build_composer(settings, db.sessions, clock)
    context = ApiContext(
        sessions=db.sessions,
        recipient_kinds=registry,
        composer=composer,
        cancel=dispatcher.cancel,
        max_request_bytes=max_request_bytes,
        max_attachment_bytes=max_attachment_bytes,
        metrics=Metrics(),
        clock=clock,
        readiness_checks=readiness or {},
        skebby_status=skebby_status,
        unsubscribe=links,
        webhook_policy=webhook_policy or UrlPolicy(),
    )
    client: TestClient[Any, Any] = TestClient(ApiTestServer(create_app(context)))
    await client.start_server()
    async with db.sessions.begin() as session:
        issued = await issue_api_key(session, "admin", superuser=True)
    try:
        yield Api(db, client, context, dispatcher, clock, issued.user, issued.key)
    finally:
        await client.close()
        await dispatcher.stop()
