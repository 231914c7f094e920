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
from contextlib import AsyncExitStack, asynccontextmanager
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
    async with AsyncExitStack() as stack:
        proxy: TcpProxy | None = None
        sqlite_dir: Path | None = None
        if db.backend == "postgresql":
            parsed = make_url(db.url)
            proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
            await stack.enter_async_context(proxy)
            url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        else:
            sqlite_dir = tmp_path / "faulty-sqlite"
            sqlite_dir.mkdir()
            stack.callback(shutil.rmtree, sqlite_dir, ignore_errors=True)
            url = f"sqlite+aiosqlite:///{sqlite_dir / 'herald.db'}"
            await _migrate(url)
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        faulty = FaultyDatabase(
            Database(db.backend, url, engine, create_session_factory(engine)),
            proxy=proxy,
            sqlite_dir=sqlite_dir,
        )
        stack.push_async_callback(faulty.restore)
        yield faulty
