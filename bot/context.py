"""The composition root's context object, built once at start-up and passed explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.settings import Settings
from persistence.database import SessionFactory, create_engine, create_session_factory

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class HeraldContext:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    clock: Clock = field(default=utc_now)

    @classmethod
    def from_settings(cls, settings: Settings) -> HeraldContext:
        engine = create_engine(settings.database_url)
        return cls(settings=settings, engine=engine, sessions=create_session_factory(engine))

    async def close(self) -> None:
        await self.engine.dispose()
