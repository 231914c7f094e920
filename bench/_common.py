"""Shared plumbing for the benchmarks: a throwaway PostgreSQL database and simulator processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bot.settings import Settings, load_settings
from persistence.database import create_engine
from persistence.migrate import upgrade

ADMIN_URL = os.environ.get(
    "HERALD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def bench_settings(database_url: str, data_dir: str, **overrides: Any) -> Settings:
    """Settings for the builders in bot/delivery.py (no .env file is read)."""
    return load_settings(_env_file=None, database_url=database_url, data_dir=data_dir, **overrides)


@asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[str]:
    """A migrated PostgreSQL database that is dropped afterwards; yields its URL."""
    name = f"herald_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await engine.dispose()
        yield url
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextmanager
def simulator_process(service: str, *extra: str) -> Iterator[str]:
    """Run a simulator in its own process (its own CPU time); yields its base URL."""
    process = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "sandbox.serve", service, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.removeprefix("READY ")
    finally:
        process.terminate()
        process.wait(timeout=10)


class SmtpSink:
    """The SMTP sink process (bench/smtp_sink.py): its port, and after exit what it received."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: int | None = None


@contextmanager
def smtp_sink(latency: float = 0.0) -> Iterator[SmtpSink]:
    """The sink process; ``latency`` seconds spent on each message (a slow mail server)."""
    process = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.smtp_sink", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    sink = SmtpSink(int(process.stdout.readline().split()[1]))
    try:
        yield sink
    finally:
        process.terminate()
        tail = process.stdout.read().split()
        process.wait(timeout=10)
        sink.received = int(tail[-1]) if tail else None
