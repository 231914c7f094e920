"""Webhook mode: only Telegram (with the secret) gets in; and sandbox mode needs no setup."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.runner import Service
from bot.settings import load_settings
from bot.webhook import SECRET_HEADER
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import WEBHOOK_SECRET, Person, running_service
from tests.conftest import Database


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4444:webhook-test-token") as simulator:
        yield simulator


@pytest.fixture
async def service(db: Database, sim: TelegramSimulator) -> AsyncIterator[Service]:
    async with running_service(db, sim, "webhook") as running:
        yield running


def forged_update(user_id: int, text: str) -> dict[str, object]:
    user = {"id": user_id, "is_bot": False, "first_name": "Mallory"}
    message = {
        "message_id": 99,
        "date": 1_700_000_000,
        "chat": {"id": user_id, "type": "private", "first_name": "Mallory"},
        "from": user,
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
    }
    return {"update_id": 900_000, "message": message}


async def test_requests_without_the_right_secret_get_403_and_are_not_processed(
    service: Service, sim: TelegramSimulator
) -> None:
    """A forged POST without (or with a wrong) secret header is refused and never answered."""
    mallory = Person(sim, 701, "Mallory")
    assert service.webhook_url is not None
    body = json.dumps(forged_update(701, "/help"))
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: WEBHOOK_SECRET + "x"}):
            async with http.post(service.webhook_url, data=body, headers=headers) as response:
                assert response.status == 403
    reply = await mallory.say("/start")  # Telegram's own delivery, with the secret, works
    assert mallory.received == [reply]
    assert [d.status for d in sim.webhook_deliveries] == [200]
    info = await service.application.bot.get_webhook_info()  # type: ignore[union-attr]
    assert info.url == service.webhook_url


async def test_malformed_updates_get_400(service: Service) -> None:
    """Bodies that are not a Telegram update are rejected with 400."""
    assert service.webhook_url is not None
    headers = {SECRET_HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for body in ("{not json", "[1, 2]", '{"update_id": "x"}', '{"message": {}}', "\xff"):
            async with http.post(service.webhook_url, data=body, headers=headers) as response:
                assert response.status == 400, body


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_sandbox_mode_runs_the_simulator_in_process(
    mode: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """With no bot token the service brings its own Telegram and says how to chat with it."""
    settings = load_settings(
        _env_file=None,
        database_url=db.url,
        port=0,
        telegram_bot_token=None,
        telegram_mode=mode,
        telegram_sandbox_port=0,
    )
    caplog.set_level(logging.WARNING, logger="bot.sandbox_mode")
    service = Service(settings)
    await service.start()
    try:
        assert service.simulator is not None and service.context is not None
        assert service.context.telegram is not None and service.context.telegram.sandbox
        assert any(
            "SANDBOX MODE" in r.message and "herald chat" in r.message for r in caplog.records
        )
        person = Person(service.simulator, 801, "Newcomer")
        greeting = await person.say("/start")
        assert "share your phone number" in (greeting.text or "")
    finally:
        await service.stop()
