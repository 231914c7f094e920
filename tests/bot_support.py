"""Helpers for the bot tests: the real Service against the Telegram simulator, and people."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from bot.runner import Service
from bot.settings import Settings, load_settings
from persistence.models import Customer, ExternalSubject
from sandbox.telegram_models import SentMessage
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database

WEBHOOK_SECRET = "test-webhook-secret"
MODES = ["polling", "webhook"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_settings(db: Database, sim: TelegramSimulator, mode: str, **extra: Any) -> Settings:
    """Settings for a Service on ``db`` that talks to ``sim`` as if it were telegram.org."""
    overrides: dict[str, Any] = {
        "_env_file": None,
        "database_url": db.url,
        "http_host": "127.0.0.1",
        "port": 0,
        "telegram_bot_token": sim.token,
        "telegram_api_base_url": sim.base_url,
        "telegram_api_file_url": sim.base_file_url,
        "telegram_mode": mode,
        "persistence_update_interval": 60,
        "support_contact": "the Herald office",
    }
    if mode == "webhook":
        port = free_port()
        overrides["port"] = port
        overrides["telegram_webhook_url"] = f"http://127.0.0.1:{port}/telegram/webhook"
        overrides["telegram_webhook_secret"] = WEBHOOK_SECRET
    overrides.update(extra)
    return load_settings(**overrides)


@asynccontextmanager
async def running_service(
    db: Database, sim: TelegramSimulator, mode: str, **extra: Any
) -> AsyncIterator[Service]:
    service = Service(service_settings(db, sim, mode, **extra))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = "condition"
) -> None:
    """Poll an async condition (a database state: no event to wait on) for at most ``within``."""
    try:
        async with asyncio.timeout(within):
            while not await condition():  # noqa: ASYNC110 - the database has no event to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what}: not true within {within}s") from None


class Person:
    """A simulated Telegram user talking to the bot, one reply at a time."""

    def __init__(
        self, sim: TelegramSimulator, user_id: int, name: str, language: str = "en"
    ) -> None:
        self.sim, self.user_id = sim, user_id
        sim.add_user(user_id, name, language_code=language)

    @property
    def received(self) -> list[SentMessage]:
        return self.sim.messages_to(self.user_id)

    async def _reply_to(self, action: Awaitable[int]) -> SentMessage:
        before = len(self.received)
        await action
        messages = await self.sim.wait_for_messages(self.user_id, before + 1, timeout=15)
        return messages[before]

    async def say(self, text: str) -> SentMessage:
        return await self._reply_to(self.sim.send_text(self.user_id, text))

    async def share_contact(self, phone: str, *, owner: int | str | None = "self") -> SentMessage:
        if owner == "self":
            return await self._reply_to(self.sim.send_contact(self.user_id, phone))
        assert not isinstance(owner, str)
        action = self.sim.send_contact(self.user_id, phone, contact_user_id=owner)
        return await self._reply_to(action)


def has_contact_button(message: SentMessage) -> bool:
    keyboard = (message.reply_markup or {}).get("keyboard", [])
    return any(button.get("request_contact") for row in keyboard for button in row)


def removes_keyboard(message: SentMessage) -> bool:
    return bool((message.reply_markup or {}).get("remove_keyboard"))


async def add_customer(db: Database, name: str, sms: str | None, chat_id: int | None = None) -> int:
    async with db.sessions.begin() as session:
        record = Customer(name=name, sms=sms, telegram_chat_id=chat_id)
        session.add(record)
        await session.flush()
        return record.id


async def add_subject(db: Database, name: str, sms: str | None, chat_id: int | None = None) -> int:
    async with db.sessions.begin() as session:
        record = ExternalSubject(name=name, sms=sms, telegram_chat_id=chat_id)
        session.add(record)
        await session.flush()
        return record.id


async def recipient_state(db: Database, model: type[Any], record_id: int) -> dict[str, Any]:
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(
                    model.telegram_chat_id, model.telegram_opted_out, model.telegram_blocked
                ).where(model.id == record_id)
            )
        ).one()
    return {"chat_id": row[0], "opted_out": row[1], "blocked": row[2]}
