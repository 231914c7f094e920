"""The user side of the Telegram simulator: people and groups acting towards the bot.

Mixed into :class:`sandbox.telegram_simulator.TelegramSimulator`. Setup (``add_user``,
``add_group``) is synchronous; every action that produces an update is ``async`` and returns the
``update_id`` it created.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from sandbox.telegram_models import (
    JSON,
    IdSequence,
    SimChat,
    SimUser,
    command_entities,
    strip_reply,
)
from sandbox.telegram_state import StateFile


class _Default(enum.Enum):
    SELF = "self"


SELF = _Default.SELF
"""Default of ``send_contact(contact_user_id=...)``: the contact card is the sender's own."""


class UserActions:
    """People, groups and what they do; the simulator supplies the state and ``_emit``."""

    bot_user: JSON
    _users: dict[int, SimUser]
    _chats: dict[int, SimChat]
    _open_callbacks: set[str]
    _update_seq: IdSequence
    _durable: StateFile
    clock: Callable[[], float]
    _emit: Callable[[str, JSON, int | None, int], Awaitable[int]]
    """Hands an update to the bot (the simulator's update queue); returns the update_id."""

    # ------------------------------------------------------------------ setup

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> SimUser:
        """Register a person; their private chat with the bot has ``chat_id == user_id``."""
        if user_id <= 0:
            raise ValueError("user ids are positive integers")
        if not first_name:
            raise ValueError("first_name must not be empty")
        user = SimUser(user_id, first_name, last_name, username, language_code)
        self._users[user_id] = user
        chat = self._chats.get(user_id)
        if chat is None:
            self._chats[user_id] = SimChat(
                user_id, "private", first_name=first_name, last_name=last_name, username=username
            )
        else:
            chat.first_name, chat.last_name, chat.username = first_name, last_name, username
        self._durable.changed()
        return user

    def add_group(
        self, chat_id: int, title: str, *, supergroup: bool = False, username: str | None = None
    ) -> SimChat:
        """Register a group (negative id) the bot is a member of."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = SimChat(
            chat_id, "supergroup" if supergroup else "group", title=title, username=username
        )
        self._chats[chat_id] = chat
        self._durable.changed()
        return chat

    def has_user(self, user_id: int) -> bool:
        return user_id in self._users

    def has_chat(self, chat_id: int) -> bool:
        return chat_id in self._chats

    def user(self, user_id: int) -> SimUser:
        user = self._users.get(user_id)
        if user is None:
            raise LookupError(f"unknown user {user_id}; call add_user() first")
        return user

    def chat(self, chat_id: int) -> SimChat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise LookupError(f"unknown chat {chat_id}")
        return chat

    def _acting_chat(self, user: SimUser, chat_id: int | None) -> SimChat:
        chat = self.chat(user.user_id if chat_id is None else chat_id)
        if chat.migrated_to is not None:
            raise RuntimeError(f"chat {chat.chat_id} was migrated to {chat.migrated_to}")
        if chat.type == "private" and (chat.blocked or chat.deactivated):
            state = "blocked the bot" if chat.blocked else "is deactivated"
            raise RuntimeError(f"user {user.user_id} {state}; they cannot write to the bot")
        return chat

    def _new_message(self, chat: SimChat, sender: SimUser | None, content: JSON) -> JSON:
        message_id = chat.allocate_message_id()
        message: JSON = {"message_id": message_id}
        if sender is not None:
            message["from"] = sender.to_json()
        message.update(chat=chat.to_json(), date=int(self.clock()), **content)
        chat.messages[message_id] = message
        return message

    # ------------------------------------------------------------------ messages

    async def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        reply_to_message_id: int | None = None,
    ) -> int:
        """The user writes ``text`` (in their private chat, or in group ``chat_id``)."""
        if not text:
            raise ValueError("Telegram does not send empty messages")
        user = self.user(user_id)
        chat = self._acting_chat(user, chat_id)
        content: JSON = {"text": text}
        entities = command_entities(text)
        if entities:
            content["entities"] = entities
        if reply_to_message_id is not None:
            replied = chat.messages.get(reply_to_message_id)
            if replied is None:
                raise LookupError(f"no message {reply_to_message_id} in chat {chat.chat_id}")
            content["reply_to_message"] = strip_reply(replied)
        message = self._new_message(chat, user, content)
        return await self._emit("message", message, chat.chat_id, next(self._update_seq))

    async def send_command(
        self, user_id: int, command: str, args: str = "", *, chat_id: int | None = None
    ) -> int:
        """The user sends a command such as ``/start`` (the leading slash is optional)."""
        text = command if command.startswith("/") else f"/{command}"
        if args:
            text = f"{text} {args}"
        return await self.send_text(user_id, text, chat_id=chat_id)

    async def send_contact(
        self,
        user_id: int,
        phone_number: str,
        *,
        contact_user_id: int | _Default | None = SELF,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> int:
        """The user shares a contact card: their own by default, or anyone's (spoofing tests).

        ``contact_user_id=None`` omits ``contact.user_id`` (a card of a non-Telegram number).
        """
        user = self.user(user_id)
        chat = self._acting_chat(user, None)
        contact: JSON = {
            "phone_number": phone_number,
            "first_name": first_name or user.first_name,
        }
        if last_name or (first_name is None and user.last_name):
            contact["last_name"] = last_name or user.last_name
        owner = user_id if contact_user_id is SELF else contact_user_id
        if owner is not None:
            contact["user_id"] = owner
        message = self._new_message(chat, user, {"contact": contact})
        return await self._emit("message", message, chat.chat_id, next(self._update_seq))

    async def edit_message(
        self, user_id: int, message_id: int, text: str, *, chat_id: int | None = None
    ) -> int:
        """The user edits one of their own text messages (an ``edited_message`` update)."""
        user = self.user(user_id)
        chat = self._acting_chat(user, chat_id)
        original = chat.messages.get(message_id)
        if original is None or original.get("from", {}).get("id") != user_id:
            raise LookupError(f"user {user_id} has no message {message_id} in chat {chat.chat_id}")
        edited: JSON = {**original, "text": text, "edit_date": int(self.clock())}
        edited.pop("entities", None)
        entities = command_entities(text)
        if entities:
            edited["entities"] = entities
        chat.messages[message_id] = edited
        return await self._emit("edited_message", edited, chat.chat_id, next(self._update_seq))

    async def press_button(
        self,
        user_id: int,
        data: str,
        *,
        message_id: int | None = None,
        chat_id: int | None = None,
    ) -> int:
        """The user presses an inline button carrying ``data`` (a ``callback_query`` update).

        The button belongs to bot message ``message_id`` or, by default, the bot's latest
        message in that chat. The callback query id is ``str(update_id)``.
        """
        user = self.user(user_id)
        chat = self._acting_chat(user, chat_id)
        message: JSON | None = None
        if message_id is not None:
            message = chat.messages.get(message_id)
            if message is None or message.get("from", {}).get("id") != self.bot_user["id"]:
                raise LookupError(f"no bot message {message_id} in chat {chat.chat_id}")
        else:
            live = [sent for sent in chat.sent[-1:] if not sent.deleted]
            if live:
                message = chat.messages.get(live[0].message_id)
        update_id = next(self._update_seq)
        query: JSON = {
            "id": str(update_id),
            "from": user.to_json(),
            "chat_instance": str(chat.chat_id),
            "data": data,
        }
        if message is not None:
            query["message"] = message
        self._open_callbacks.add(str(update_id))
        return await self._emit("callback_query", query, chat.chat_id, update_id)

    # ------------------------------------------------------------------ membership

    def _bot_member(self, status: str) -> JSON:
        member: JSON = {"status": status, "user": self.bot_user}
        if status == "kicked":
            member["until_date"] = 0  # 0: forever
        return member

    async def _member_update(self, user_id: int, old: str, new: str) -> int:
        user = self.user(user_id)
        chat = self.chat(user_id)
        payload: JSON = {
            "chat": chat.to_json(),
            "from": user.to_json(),
            "date": int(self.clock()),
            "old_chat_member": self._bot_member(old),
            "new_chat_member": self._bot_member(new),
        }
        return await self._emit("my_chat_member", payload, chat.chat_id, next(self._update_seq))

    async def block_bot(self, user_id: int) -> int:
        """The user blocks the bot: a member→kicked update, then sends answer 403."""
        chat = self.chat(self.user(user_id).user_id)
        if chat.blocked:
            raise RuntimeError(f"user {user_id} already blocked the bot")
        chat.blocked = True
        return await self._member_update(user_id, "member", "kicked")

    async def unblock_bot(self, user_id: int) -> int:
        """The user unblocks (restarts) the bot: a kicked→member update."""
        chat = self.chat(self.user(user_id).user_id)
        if not chat.blocked:
            raise RuntimeError(f"user {user_id} has not blocked the bot")
        chat.blocked = False
        return await self._member_update(user_id, "kicked", "member")

    async def deactivate_user(self, user_id: int) -> None:
        """The user deletes their account: sends answer 403 "user is deactivated"."""
        self.chat(self.user(user_id).user_id).deactivated = True
        self._durable.changed()

    async def migrate_group(self, old_id: int, new_id: int) -> None:
        """Upgrade group ``old_id`` to supergroup ``new_id`` (sends to the old id answer 400)."""
        old = self.chat(old_id)
        if old.type != "group" or old.migrated_to is not None:
            raise ValueError(f"chat {old_id} is not a basic group")
        if new_id >= 0 or new_id in self._chats:
            raise ValueError(f"{new_id} is not a free negative chat id")
        new = self.add_group(new_id, old.title or "", supergroup=True, username=old.username)
        old.migrated_to = new_id
        to_message = self._new_message(old, None, {"migrate_to_chat_id": new_id})
        await self._emit("message", to_message, old_id, next(self._update_seq))
        from_message = self._new_message(new, None, {"migrate_from_chat_id": old_id})
        await self._emit("message", from_message, new_id, next(self._update_seq))
