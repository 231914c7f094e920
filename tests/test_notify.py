"""LISTEN/NOTIFY between processes: notifications arrive at commit, never on rollback, and the
listener comes back by itself when its connection is killed (saying it was away)."""

from __future__ import annotations

import asyncpg

from persistence.notify import LISTENER_NAME, NotificationListener, asyncpg_dsn, notify
from tests.bot_support import wait_until
from tests.conftest import Database

CHANNEL = "herald_test_channel"


async def test_notifications_arrive_at_commit_and_survive_a_lost_connection(db: Database) -> None:
    """A committed notify reaches the listener, a rolled back one never; after the server
    drops the listener's connection it reconnects, reports the gap, and hears again."""
    if db.backend == "sqlite":  # one process: nothing to tell, and notify must not fail
        async with db.sessions.begin() as session:
            await notify(session, CHANNEL, "ignored")
        return
    heard: list[str] = []
    states: list[bool] = []
    listener = NotificationListener(
        asyncpg_dsn(db.engine.url),
        {CHANNEL: heard.append},
        on_state=states.append,
        health_interval=0.2,
        backoff_initial=0.05,
    )
    await listener.start()
    try:
        assert listener.listening and states == [True]
        async with db.sessions() as session:
            await notify(session, CHANNEL, "rolled back")
            await session.rollback()
        async with db.sessions.begin() as session:
            await notify(session, CHANNEL, "key:one")
        await wait_until(lambda: _true(heard == ["key:one"]), what="the committed notification")
        await _kill_listener_connections(db)
        await wait_until(lambda: _true(states == [True, False, True]), what="a reconnection")
        async with db.sessions.begin() as session:
            await notify(session, CHANNEL, "key:two")
        await wait_until(lambda: _true(heard == ["key:one", "key:two"]), what="hearing again")
        assert listener.connections == 2
    finally:
        await listener.stop()
    assert states[-1] is False


async def _true(value: bool) -> bool:
    return value


async def _kill_listener_connections(db: Database) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(db.engine.url))
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
    finally:
        await connection.close()
