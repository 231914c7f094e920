"""A database that a test can take away and give back, on SQLite and on PostgreSQL.

PostgreSQL is reached through a :class:`tests.tcp_proxy.TcpProxy`: ``cut()`` closes every open
connection and refuses new ones, as a server restart or a network partition would. SQLite is a
file of its own whose directory is replaced by a plain file: every new connection then fails with
"unable to open database file", as with a volume that went away (the pool is emptied first, since
an open SQLite connection keeps working on its file descriptor).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from persistence.database import create_engine, create_session_factory
from tests.conftest import Database, _migrate
from tests.tcp_proxy import TcpProxy


@dataclass
class FaultyDatabase:
    db: Database
    proxy: TcpProxy | None = None
    sqlite_dir: Path | None = None

    async def cut(self) -> None:
        if self.proxy is not None:
            await self.proxy.cut()
            return
        assert self.sqlite_dir is not None
        await self.db.engine.dispose()
        self.sqlite_dir.rename(self._moved)
        self.sqlite_dir.write_text("not a directory: the database is gone\n")

    async def restore(self) -> None:
        if self.proxy is not None:
            await self.proxy.restore()
            return
        assert self.sqlite_dir is not None
        if self._moved.exists():
            self.sqlite_dir.unlink(missing_ok=True)
            self._moved.rename(self.sqlite_dir)

    @property
    def _moved(self) -> Path:
        assert self.sqlite_dir is not None
        return self.sqlite_dir.with_name(self.sqlite_dir.name + ".away")


@asynccontextmanager
async def faulty_database(db: Database, tmp_path: Path) -> AsyncIterator[FaultyDatabase]:
    """The backend of ``db`` on a path the test can cut (``db`` still cleans PostgreSQL up)."""
    if db.backend == "postgresql":
        url = make_url(db.url)
        async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            engine = create_engine(proxied)
            faulty = FaultyDatabase(
                Database(db.backend, proxied, engine, create_session_factory(engine)), proxy=proxy
            )
            try:
                yield faulty
            finally:
                await proxy.restore()
                await engine.dispose()
        return
    directory = tmp_path / "faulty-sqlite"
    directory.mkdir()
    url = f"sqlite+aiosqlite:///{directory / 'herald.db'}"
    await _migrate(url)
    engine = create_engine(url)
    faulty = FaultyDatabase(
        Database(db.backend, url, engine, create_session_factory(engine)), sqlite_dir=directory
    )
    try:
        yield faulty
    finally:
        await faulty.restore()
        await engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)
