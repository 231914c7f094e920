"""The composition root's context object, built once at start-up and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.metrics import Metrics
from bot.settings import Settings
from channels.clock import Clock, utc_now
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence.database import SessionFactory, create_engine, create_session_factory
from persistence.recipient_kinds import RecipientKindRegistry, default_registry


def telegram_limiter(settings: Settings) -> TelegramRateLimiter:
    """The bot token's send budget, shared by the handlers' replies and the broadcasts."""
    paid = settings.telegram_paid_broadcast
    rate = settings.telegram_paid_rate_per_second if paid else settings.telegram_rate_per_second
    return TelegramRateLimiter(rate)


@dataclass(frozen=True)
class TelegramEndpoint:
    """Where the Bot API lives: telegram.org, a self-hosted server, or the in-process sandbox."""

    token: str
    base_url: str
    base_file_url: str
    sandbox: bool


@dataclass
class HeraldContext:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    recipient_kinds: RecipientKindRegistry
    telegram_limiter: TelegramRateLimiter
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = field(default=utc_now)
    telegram: TelegramEndpoint | None = None  # set by the runner once the Bot API is known

    @classmethod
    def from_settings(cls, settings: Settings) -> HeraldContext:
        engine = create_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            recipient_kinds=default_registry(),
            telegram_limiter=telegram_limiter(settings),
        )

    async def close(self) -> None:
        await self.engine.dispose()
