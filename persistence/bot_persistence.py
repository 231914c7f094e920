"""python-telegram-bot persistence in the database: one row per user, chat and conversation key.

Each writer opens its own session because python-telegram-bot runs them concurrently
(``asyncio.gather``) every ``update_interval`` seconds and once more in ``shutdown()``.
"""

from __future__ import annotations

import json
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

    # --- getters: python-telegram-bot calls each once, in Application.initialize() ---

    async def get_user_data(self) -> dict[int, Data]:
        async with self._sessions() as session:
            rows = await session.execute(select(BotUserData.user_id, BotUserData.data))
            return {user_id: decode(data) for user_id, data in rows}

    async def get_chat_data(self) -> dict[int, Data]:
        async with self._sessions() as session:
            rows = await session.execute(select(BotChatData.chat_id, BotChatData.data))
            return {chat_id: decode(data) for chat_id, data in rows}

    async def _get_singleton(self, name: str) -> Any:
        async with self._sessions() as session:
            row = await session.get(BotSingleton, name)
            return None if row is None else decode(row.data["value"])

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

    async def update_user_data(self, user_id: int, data: Data) -> None:
        row = {
            "user_id": user_id,
            "data": _encode(f"user_data[{user_id}]", data),
            "updated_at": func.now(),
        }
        async with self._sessions.begin() as session:
            await upsert(session, BotUserData, [row], ["user_id"])

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        row = {
            "chat_id": chat_id,
            "data": _encode(f"chat_data[{chat_id}]", data),
            "updated_at": func.now(),
        }
        async with self._sessions.begin() as session:
            await upsert(session, BotChatData, [row], ["chat_id"])

    async def _put_singleton(self, name: str, value: Any) -> None:
        row = {"name": name, "data": {"value": _encode(name, value)}, "updated_at": func.now()}
        async with self._sessions.begin() as session:
            await upsert(session, BotSingleton, [row], ["name"])

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
        async with self._sessions.begin() as session:
            await session.execute(delete(BotUserData).where(BotUserData.user_id == user_id))

    async def drop_chat_data(self, chat_id: int) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(BotChatData).where(BotChatData.chat_id == chat_id))

    # --- refreshers: this process is the only writer, so memory is already current ---

    async def refresh_user_data(self, user_id: int, user_data: Data) -> None:
        return None

    async def refresh_chat_data(self, chat_id: int, chat_data: Data) -> None:
        return None

    async def refresh_bot_data(self, bot_data: Data) -> None:
        return None

    async def flush(self) -> None:
        return None  # every writer commits at once
