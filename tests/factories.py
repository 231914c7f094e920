"""Small factories for test data; the ``db`` fixture empties every table after each test."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.settings import Settings, load_settings
from persistence.database import SessionFactory
from persistence.models import Customer, ExternalSubject, User

_numbers = itertools.count(1)


def delivery_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for the composer and dispatcher builders in tests (no .env file is read)."""
    values: dict[str, Any] = {"_env_file": None, "database_url": database_url, "data_dir": data_dir}
    values.update(overrides)
    return load_settings(**values)


async def make_user(
    sessions: SessionFactory, *, superuser: bool = True, name: str | None = None
) -> User:
    async with sessions.begin() as session:
        user = User(username=name or f"user{next(_numbers)}", is_superuser=superuser)
        session.add(user)
    return user


async def make_customers(sessions: SessionFactory, count: int, **fields: Any) -> list[Customer]:
    """``count`` customers; ``fields`` may hold callables of the index for per-row values."""
    rows = []
    for i in range(count):
        values = {k: (v(i) if callable(v) else v) for k, v in fields.items()}
        values.setdefault("name", f"Customer {i}")
        rows.append(Customer(**values))
    async with sessions.begin() as session:
        session.add_all(rows)
    return rows


async def make_subject(sessions: SessionFactory, **fields: Any) -> ExternalSubject:
    fields.setdefault("name", f"Subject {next(_numbers)}")
    subject = ExternalSubject(**fields)
    async with sessions.begin() as session:
        session.add(subject)
    return subject


class FakeClock:
    """A wall clock that moves only when the test says so (or, made with ``real()``, the wall
    clock itself, for tests whose workers run in real time)."""

    def __init__(self, start: datetime | None = None, *, real: bool = False) -> None:
        self._now = start or datetime.now(UTC)
        self._real = real

    @classmethod
    def real(cls) -> FakeClock:
        return cls(real=True)

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) if self._real else self._now

    @now.setter
    def now(self, value: datetime) -> None:
        assert not self._real, "the real clock cannot be set"
        self._now = value

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        assert not self._real, "the real clock moves by itself"
        self._now += timedelta(seconds=seconds)


class EpochClock:
    """A seconds-since-epoch clock (``time.time`` style) that moves only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
