"""python-telegram-bot persistence in the database: one row per user, chat and conversation key.

python-telegram-bot runs the writers concurrently (``asyncio.gather``) every ``update_interval``
seconds and once more in ``shutdown()``, calling ``update_user_data``/``update_chat_data`` for every
user and chat an update touched since the last run, whether or not their data changed. So:

* data equal to what is stored (or, once loaded, empty data of a key never stored) is not written;
* the user (and chat) rows of one run are written together, in one transaction of one statement
  per few hundred rows, instead of one transaction and one pooled connection per key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

from sqlalchemy import delete, func, select
from telegram.ext import BasePersistence, PersistenceInput

from persistence.database import SessionFactory
from persistence.json_codec import NotJsonSerializableError, decode, encode
from persistence.models import BotChatData, BotConversation, BotSingleton, BotUserData
from persistence.upsert import upsert

Data = dict[Any, Any]
# The shapes python-telegram-bot hands to persistence (telegram.ext._utils.types, private there).
ConversationKey = tuple[int | str, ...]
ConversationDict = dict[ConversationKey, object]
CDCData = tuple[list[tuple[str, float, dict[str, Any]]], dict[str, str]]


class PersistenceError(Exception):
    """Bot data could not be stored; nothing already stored was changed."""


def _encode(what: str, value: Any) -> Any:
    try:
        return encode(value)
    except NotJsonSerializableError as exc:
        raise PersistenceError(f"{what}{exc.path} cannot be stored as JSON: {exc}") from exc


def _conversation_key(key: ConversationKey) -> str:
    return json.dumps(_encode("conversation key", key), separators=(",", ":"))


def _fingerprint(encoded: Any) -> str:
    """What tells stored data apart: JSON text (``1``, ``1.0`` and ``true`` differ here)."""
    return json.dumps(encoded, separators=(",", ":"))


_EMPTY = _fingerprint(encode({}))
_UNKNOWN = ""  # matches no fingerprint: the next write goes through
BATCH_ROWS = 300  # rows per INSERT: well within both databases' limits on bound parameters

Row = dict[str, Any]


class _WriteBatch:
    """Collects the rows written concurrently (one ``update_persistence`` run) into one write.

    The first writer schedules the flush; it runs once every writer gathered with it has queued
    its row, and each writer returns (or raises) when the write holding its row is committed.
    """

    def __init__(self, write: Callable[[list[Row]], Awaitable[None]]) -> None:
        self._write = write
        self._rows: dict[Any, Row] = {}
        self._flush: asyncio.Future[None] | None = None

    async def add(self, key: Any, row: Row) -> None:
        self._rows[key] = row  # a later write of the same key in the same run wins
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._run())
        await asyncio.shield(self._flush)

    async def _run(self) -> None:
        await asyncio.sleep(0)  # let the writers gathered with this one queue their rows
        rows, self._rows, self._flush = list(self._rows.values()), {}, None
        await self._write(rows)


class DatabasePersistence(BasePersistence[Data, Data, Data]):
    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        update_interval: float = 5.0,
        store_data: PersistenceInput | None = None,
    ) -> None:
        super().__init__(store_data=store_data, update_interval=update_interval)
        self._sessions = session_factory
        # What the database holds, as fingerprints, for the keys this process loaded or wrote.
        # Once a table is loaded, a key missing here has no row: empty data needs none.
        self._stored_users: dict[int, str] = {}
        self._stored_chats: dict[int, str] = {}
        self._stored_singletons: dict[str, str] = {}
        self._users_loaded = self._chats_loaded = False
        self._user_batch = _WriteBatch(self._write_user_rows)
        self._chat_batch = _WriteBatch(self._write_chat_rows)

    # --- getters: python-telegram-bot calls each once, in Application.initialize() ---

    async def get_user_data(self) -> dict[int, Data]:
        async with self._sessions() as session:
            rows = (await session.execute(select(BotUserData.user_id, BotUserData.data))).all()
        self._stored_users = {user_id: _fingerprint(data) for user_id, data in rows}
        self._users_loaded = True
        return {user_id: decode(data) for user_id, data in rows}

    async def get_chat_data(self) -> dict[int, Data]:
        async with self._sessions() as session:
            rows = (await session.execute(select(BotChatData.chat_id, BotChatData.data))).all()
        self._stored_chats = {chat_id: _fingerprint(data) for chat_id, data in rows}
        self._chats_loaded = True
        return {chat_id: decode(data) for chat_id, data in rows}

    async def _get_singleton(self, name: str) -> Any:
        async with self._sessions() as session:
            row = await session.get(BotSingleton, name)
            if row is None:
                return None
            self._stored_singletons[name] = _fingerprint(row.data)
            return decode(row.data["value"])

    async def get_bot_data(self) -> Data:
        return cast(Data, await self._get_singleton("bot_data") or {})

    async def get_callback_data(self) -> CDCData | None:
        stored = await self._get_singleton("callback_data")
        if stored is None:
            return None
        buttons, mapping = stored
        return [tuple(entry) for entry in buttons], mapping

    async def get_conversations(self, name: str) -> ConversationDict:
        async with self._sessions() as session:
            rows = await session.execute(
                select(BotConversation.key, BotConversation.state).where(
                    BotConversation.name == name
                )
            )
            return {
                cast(ConversationKey, decode(json.loads(key))): decode(state["state"])
                for key, state in rows
            }

    # --- writers ---

    @staticmethod
    def _unchanged(stored: dict[int, str], loaded: bool, key: int, fingerprint: str) -> bool:
        known = stored.get(key)
        if known is None:
            return loaded and fingerprint == _EMPTY
        return known == fingerprint

    async def update_user_data(self, user_id: int, data: Data) -> None:
        encoded = _encode(f"user_data[{user_id}]", data)
        fingerprint = _fingerprint(encoded)
        if self._unchanged(self._stored_users, self._users_loaded, user_id, fingerprint):
            return
        row = {"user_id": user_id, "data": encoded, "updated_at": func.now()}
        await self._user_batch.add(user_id, row)
        self._stored_users[user_id] = fingerprint

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        encoded = _encode(f"chat_data[{chat_id}]", data)
        fingerprint = _fingerprint(encoded)
        if self._unchanged(self._stored_chats, self._chats_loaded, chat_id, fingerprint):
            return
        row = {"chat_id": chat_id, "data": encoded, "updated_at": func.now()}
        await self._chat_batch.add(chat_id, row)
        self._stored_chats[chat_id] = fingerprint

    async def _write_rows(
        self, model: type[BotUserData] | type[BotChatData], key: str, rows: list[Row]
    ) -> None:
        async with self._sessions.begin() as session:
            for start in range(0, len(rows), BATCH_ROWS):
                await upsert(session, model, rows[start : start + BATCH_ROWS], [key])

    async def _write_user_rows(self, rows: list[Row]) -> None:
        await self._write_rows(BotUserData, "user_id", rows)

    async def _write_chat_rows(self, rows: list[Row]) -> None:
        await self._write_rows(BotChatData, "chat_id", rows)

    async def _put_singleton(self, name: str, value: Any) -> None:
        data = {"value": _encode(name, value)}
        fingerprint = _fingerprint(data)
        if self._stored_singletons.get(name) == fingerprint:
            return
        row = {"name": name, "data": data, "updated_at": func.now()}
        async with self._sessions.begin() as session:
            await upsert(session, BotSingleton, [row], ["name"])
        self._stored_singletons[name] = fingerprint

    async def update_bot_data(self, data: Data) -> None:
        await self._put_singleton("bot_data", data)

    async def update_callback_data(self, data: CDCData) -> None:
        buttons, mapping = data
        await self._put_singleton("callback_data", [[list(entry) for entry in buttons], mapping])

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        stored_key = _conversation_key(key)
        async with self._sessions.begin() as session:
            if new_state is None:  # the conversation ended
                await session.execute(
                    delete(BotConversation).where(
                        BotConversation.name == name, BotConversation.key == stored_key
                    )
                )
                return
            state = {"state": _encode(f"conversation {name}{list(key)}", new_state)}
            row = {"name": name, "key": stored_key, "state": state, "updated_at": func.now()}
            await upsert(session, BotConversation, [row], ["name", "key"])

    async def drop_user_data(self, user_id: int) -> None:
        self._stored_users[user_id] = _UNKNOWN  # until the row is surely gone
        async with self._sessions.begin() as session:
            await session.execute(delete(BotUserData).where(BotUserData.user_id == user_id))
        self._stored_users.pop(user_id, None)

    async def drop_chat_data(self, chat_id: int) -> None:
        self._stored_chats[chat_id] = _UNKNOWN
        async with self._sessions.begin() as session:
            await session.execute(delete(BotChatData).where(BotChatData.chat_id == chat_id))
        self._stored_chats.pop(chat_id, None)

    # --- refreshers: this process is the only writer, so memory is already current ---

    async def refresh_user_data(self, user_id: int, user_data: Data) -> None:
        return None

    async def refresh_chat_data(self, chat_id: int, chat_data: Data) -> None:
        return None

    async def refresh_bot_data(self, bot_data: Data) -> None:
        return None

    async def flush(self) -> None:
        return None  # every writer commits at once
