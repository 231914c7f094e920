"""A delivery pipeline wired to the Telegram simulator and a real database, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.context import TelegramEndpoint
from bot.delivery import build_channels, build_composer, build_dispatcher
from channels.base import Channel
from channels.composer import Composer
from channels.composition import ComposeRequest
from channels.dispatcher import Dispatcher, DispatchObserver
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence import outbox
from persistence.models import Message, MessageRecipient, User
from persistence.outbox import ClaimedDelivery, read_counters
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import FakeClock, delivery_settings, make_user


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

    async def claim_as_dead_worker(self, channel: str) -> list[ClaimedDelivery]:
        """Claim a batch as another worker would just before its process died."""
        now = self.clock()
        async with self.db.sessions.begin() as session:
            return await outbox.claim(
                session,
                channel=channel,
                limit=self.dispatcher.config.batch_size,
                now=now,
                lease_until=now + timedelta(seconds=self.dispatcher.config.lease_seconds),
                owner="w-died",
            )

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
    clock: FakeClock | None = None,
    observer: DispatchObserver | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[Pipeline]:
    """``clock`` defaults to a FakeClock that moves only when the test says; pass
    ``FakeClock.real()`` for a pipeline whose workers run on wall-clock time."""
    clock = clock or FakeClock()
    limiter = TelegramRateLimiter(rate, per_chat_interval=0.0)
    endpoint = TelegramEndpoint(sim.token, sim.base_url, sim.base_file_url, sandbox=True)
    cost = {f"cost_{name}": value for name, value in (costs or {}).items()}
    settings = delivery_settings(
        db.url,
        tmp_path,
        dispatch_batch_size=batch_size,
        dispatch_max_attempts=max_attempts,
        dispatch_lease_seconds=30,
        dispatch_concurrency=32,
        **{"cost_telegram": 0, "cost_email": 0, "cost_sms": 0, "cost_storage": 0, **cost},
        **settings_overrides,
    )
    all_channels: dict[str, Channel] = {
        **build_channels(
            settings, telegram=endpoint, limiter=limiter, only=("telegram", "storage")
        ),
        **(channels or {}),
    }
    dispatcher = build_dispatcher(settings, db.sessions, all_channels, clock, observer=observer)
    composer = build_composer(settings, db.sessions, clock, on_enqueued=dispatcher.wake)
    user = await make_user(db.sessions, superuser=superuser)
    try:
        yield Pipeline(db, sim, clock, composer, dispatcher, limiter, user)
    finally:
        await dispatcher.stop()
