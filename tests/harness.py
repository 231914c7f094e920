"""A delivery pipeline wired to the Telegram simulator and a real database, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.context import TelegramEndpoint
from bot.delivery import telegram_client
from channels.base import Channel
from channels.composer import Composer
from channels.composition import ComposerConfig, ComposeRequest
from channels.dispatcher import Dispatcher, DispatcherConfig
from channels.storage_channel import StorageChannel
from channels.telegram_channel import TelegramChannel
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence.models import Message, MessageRecipient, User
from persistence.outbox import read_counters
from persistence.recipient_kinds import default_registry
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import FakeClock, make_user


@dataclass
class Pipeline:
    db: Database
    sim: TelegramSimulator
    clock: FakeClock
    composer: Composer
    dispatcher: Dispatcher
    limiter: TelegramRateLimiter
    user: User

    def request(self, **fields: Any) -> ComposeRequest:
        fields.setdefault("channels", ["telegram"])
        fields.setdefault("body", "Hello from Herald")
        return ComposeRequest(**fields)

    async def send(self, **fields: Any) -> dict[str, Any]:
        return await self.composer.send(self.user, self.request(**fields))

    async def deliveries(self, message_id: int) -> list[MessageRecipient]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(MessageRecipient)
                .where(MessageRecipient.message_id == message_id)
                .order_by(MessageRecipient.id)
            )
            return list(rows.scalars())

    async def counters(self, message_id: int) -> dict[str, int]:
        async with self.db.sessions() as session:
            return (await read_counters(session, [message_id]))[message_id]

    async def message(self, message_id: int) -> Message:
        async with self.db.sessions() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            return message


@asynccontextmanager
async def pipeline(
    db: Database,
    sim: TelegramSimulator,
    tmp_path: Path,
    *,
    batch_size: int = 50,
    max_attempts: int = 3,
    rate: float = 1000.0,
    channels: Mapping[str, Channel] | None = None,
    costs: Mapping[str, Decimal] | None = None,
    superuser: bool = True,
) -> AsyncIterator[Pipeline]:
    clock = FakeClock()
    limiter = TelegramRateLimiter(rate, per_chat_interval=0.0)
    endpoint = TelegramEndpoint(sim.token, sim.base_url, sim.base_file_url, sandbox=True)
    bot = telegram_client(endpoint, pool_size=32)
    all_channels: dict[str, Channel] = {
        "telegram": TelegramChannel(bot, limiter, parse_mode="HTML"),
        "storage": StorageChannel(),
        **(channels or {}),
    }
    registry = default_registry()
    dispatcher = Dispatcher(
        db.sessions,
        all_channels,
        registry,
        DispatcherConfig(batch_size=batch_size, max_attempts=max_attempts, lease_seconds=30),
        clock,
        attachments_root=tmp_path / "attachments",
    )
    composer = Composer(
        db.sessions,
        registry,
        ComposerConfig(attachments_root=tmp_path / "attachments", costs=costs or {}),
        clock,
        on_enqueued=dispatcher.wake,
    )
    user = await make_user(db.sessions, superuser=superuser)
    try:
        yield Pipeline(db, sim, clock, composer, dispatcher, limiter, user)
    finally:
        await dispatcher.stop()
