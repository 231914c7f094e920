"""Database-backed python-telegram-bot persistence, on both databases."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from persistence.bot_persistence import DatabasePersistence, PersistenceError
from persistence.models import BotConversation, BotUserData
from tests.conftest import Database


def _persistence(db: Database) -> DatabasePersistence:
    return DatabasePersistence(db.sessions, update_interval=1)


async def test_user_and_chat_data_survive_a_reload_with_int_and_tuple_keys(db: Database) -> None:
    """Integer and tuple keys, nested tuples and None come back exactly as stored."""
    first = _persistence(db)
    data = {"lang": "it", 7: "seven", (1, 2): ["a", (3, None)], "nested": {5: {"x": 1.5}}}
    await first.update_user_data(101, data)
    await first.update_chat_data(-200, {"members": (1, 2, 3)})
    second = _persistence(db)
    assert await second.get_user_data() == {101: data}
    assert await second.get_chat_data() == {-200: {"members": (1, 2, 3)}}


async def test_bot_and_callback_data_round_trip(db: Database) -> None:
    """bot_data and callback_data are restored after a reload; absent callback data is None."""
    persistence = _persistence(db)
    assert await persistence.get_callback_data() is None
    assert await persistence.get_bot_data() == {}
    await persistence.update_bot_data({"broadcasts": 3, 4: "four"})
    callback = ([("uuid-1", 1700000000.5, {"btn": "yes"})], {"cq-1": "uuid-1"})
    await persistence.update_callback_data(callback)
    reloaded = _persistence(db)
    assert await reloaded.get_bot_data() == {"broadcasts": 3, 4: "four"}
    assert await reloaded.get_callback_data() == callback


async def test_writes_are_one_row_per_key_and_upserted(db: Database) -> None:
    """Rewriting a user's data updates that user's row only; no whole-table rewrite."""
    persistence = _persistence(db)
    await asyncio.gather(*(persistence.update_user_data(uid, {"n": uid}) for uid in range(20)))
    await persistence.update_user_data(3, {"n": "changed"})
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BotUserData)) == 20
    assert (await _persistence(db).get_user_data())[3] == {"n": "changed"}


async def test_conversation_states_restore_tuple_keys_and_none_deletes(db: Database) -> None:
    """Conversation keys come back as tuples; a conversation that ends leaves no row."""
    persistence = _persistence(db)
    await persistence.update_conversation("register", (10, 10), 1)
    await persistence.update_conversation("register", (11, 11), "ASK_PHONE")
    await persistence.update_conversation("other", (10,), 2)
    assert await _persistence(db).get_conversations("register") == {
        (10, 10): 1,
        (11, 11): "ASK_PHONE",
    }
    await persistence.update_conversation("register", (10, 10), None)
    assert await _persistence(db).get_conversations("register") == {(11, 11): "ASK_PHONE"}
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BotConversation)) == 2


async def test_drop_deletes_user_and_chat_data(db: Database) -> None:
    """drop_user_data and drop_chat_data remove the stored rows."""
    persistence = _persistence(db)
    await persistence.update_user_data(1, {"a": 1})
    await persistence.update_chat_data(1, {"b": 2})
    await persistence.drop_user_data(1)
    await persistence.drop_chat_data(1)
    reloaded = _persistence(db)
    assert await reloaded.get_user_data() == {}
    assert await reloaded.get_chat_data() == {}


async def test_unstorable_data_names_the_key_and_keeps_the_old_value(db: Database) -> None:
    """A value JSON cannot hold fails with its key named, and what was stored stays intact."""
    persistence = _persistence(db)
    await persistence.update_user_data(5, {"ok": True})
    with pytest.raises(PersistenceError, match=r"user_data\[5\]\['when'\]"):
        await persistence.update_user_data(5, {"ok": False, "when": object()})
    assert await _persistence(db).get_user_data() == {5: {"ok": True}}
