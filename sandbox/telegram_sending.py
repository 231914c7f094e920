"""The bot's sending methods of the Telegram simulator: send, edit and delete messages.

Mixed into :class:`sandbox.telegram_simulator.TelegramSimulator`, which owns the state. Texts are
parsed as Telegram parses them (:mod:`sandbox.telegram_markup`) and their lengths counted after
parsing, in UTF-16 units; the recorded :class:`~sandbox.telegram_models.SentMessage` keeps the raw
text, the visible text and its entities. A message can be deleted for everyone during
:data:`DELETE_WINDOW` seconds of the simulator's clock (``age_message`` makes one older).
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from sandbox.telegram_entities import ParsedText, utf16_len
from sandbox.telegram_errors import JSON, ApiError, bad_request
from sandbox.telegram_faults import RateLimits
from sandbox.telegram_keyboards import check_reply_markup
from sandbox.telegram_markup import parse_text
from sandbox.telegram_models import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    IdSequence,
    Params,
    SentFile,
    SentMessage,
    SimChat,
    SimUser,
    UploadedFile,
    strip_reply,
)
from sandbox.telegram_state import StateFile

DELETE_WINDOW = 48 * 3600
MAX_DELETE_BATCH = 100
_FILE_LIMITS = {"photo": 10 * 1024 * 1024, "document": 50 * 1024 * 1024}


class BotMessages:
    """sendMessage, sendPhoto, sendDocument, editMessageText, deleteMessage(s)."""

    bot_user: JSON
    limits: RateLimits | None
    sends: list[tuple[float, int, str]]
    clock: Callable[[], float]
    html_strict: bool
    _users: dict[int, SimUser]
    _chats: dict[int, SimChat]
    _files: dict[str, SentFile]
    _file_seq: IdSequence
    _sent_cond: asyncio.Condition
    _durable: StateFile

    # ------------------------------------------------------------------ helpers

    def _find_chat(self, params: Params, *, sending: bool) -> SimChat:
        raw = params.values.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        chat: SimChat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (c for c in self._chats.values() if c.username and c.username.lower() == name),
                None,
            )
        else:
            try:
                chat_id = params.int_("chat_id")
            except ApiError:
                chat_id = None
            chat = self._chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise bad_request("chat not found")
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if sending and chat.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if sending and chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _lookup_user(self, user_id: int) -> JSON | None:
        user = self._users.get(user_id)
        return user.to_json() if user is not None else None

    def _parse(self, text: str, parse_mode: str | None) -> ParsedText:
        return parse_text(text, parse_mode, strict=self.html_strict, users=self._lookup_user)

    def _parse_text(self, text: str, parse_mode: str | None) -> ParsedText:
        if not text.strip():
            raise bad_request("message text is empty")
        parsed = self._parse(text, parse_mode)
        if not parsed.text:
            raise bad_request("message text is empty")
        if utf16_len(parsed.text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        return parsed

    def _now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------------ sending

    async def _send_message(self, params: Params) -> JSON:
        chat = self._find_chat(params, sending=True)
        text = params.str_("text") or ""
        parse_mode = params.str_("parse_mode")
        parsed = self._parse_text(text, parse_mode)
        extra: JSON = {"text": parsed.text}
        if parsed.entities:
            extra["entities"] = parsed.entities
        return await self._deliver(
            chat, "sendMessage", params, extra, parsed, text=text, parse_mode=parse_mode
        )

    async def _send_photo(self, params: Params) -> JSON:
        return await self._send_media(params, "sendPhoto", "photo")

    async def _send_document(self, params: Params) -> JSON:
        return await self._send_media(params, "sendDocument", "document")

    async def _send_media(self, params: Params, method: str, kind: str) -> JSON:
        chat = self._find_chat(params, sending=True)
        source = params.file_(kind)
        if source is None:
            raise bad_request(f"there is no {kind} in the request")
        caption = params.str_("caption") or None
        parse_mode = params.str_("parse_mode")
        extra: JSON = {}
        parsed: ParsedText | None = None
        if caption is not None:
            parsed = self._parse(caption, parse_mode)
            if utf16_len(parsed.text) > MAX_CAPTION_LENGTH:
                raise bad_request("message caption is too long")
            if parsed.text:
                extra["caption"] = parsed.text
            if parsed.entities:
                extra["caption_entities"] = parsed.entities
        file = self._store_file(source, kind)
        described: JSON = {"file_id": file.file_id, "file_unique_id": file.file_unique_id}
        if file.size is not None:
            described["file_size"] = file.size
        if kind == "photo":
            extra["photo"] = [{**described, "width": 320, "height": 320}]
        else:
            if file.name:
                described["file_name"] = file.name
            if file.mime_type:
                described["mime_type"] = file.mime_type
            extra["document"] = described
        return await self._deliver(
            chat, method, params, extra, parsed, caption=caption, parse_mode=parse_mode, file=file
        )

    def _store_file(self, source: UploadedFile | str, kind: str) -> SentFile:
        if isinstance(source, str) and not source.startswith(("http://", "https://")):
            known = self._files.get(source)
            if known is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return known
        seq = next(self._file_seq)
        file_id, unique_id = f"SIM-{kind}-{seq:08d}", f"simu{seq:08d}"
        if isinstance(source, UploadedFile):
            if not source.data:
                raise bad_request("file must be non-empty")
            if len(source.data) > _FILE_LIMITS[kind]:
                raise bad_request("file is too big")
            mime = source.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(source.filename or "")[0] or mime
            file = SentFile(
                file_id,
                unique_id,
                source.filename,
                len(source.data),
                hashlib.sha256(source.data).hexdigest(),
                mime,
            )
        else:
            name = PurePosixPath(urlsplit(source).path).name or None
            mime = mimetypes.guess_type(name or "")[0]
            file = SentFile(file_id, unique_id, name, None, None, mime, url=source)
        self._files[file.file_id] = file
        return file

    def _reply_target(self, chat: SimChat, params: Params) -> int | None:
        reply_to = params.int_("reply_to_message_id")
        allow_without_reply = params.bool_("allow_sending_without_reply")
        reply_parameters = params.json_("reply_parameters")
        if isinstance(reply_parameters, dict):
            reply_to = reply_parameters.get("message_id", reply_to)
            allow_without_reply = bool(reply_parameters.get("allow_sending_without_reply"))
        if reply_to is not None and reply_to not in chat.messages:
            if not allow_without_reply:
                raise bad_request("message to be replied not found")
            return None
        return reply_to

    async def _deliver(
        self,
        chat: SimChat,
        method: str,
        params: Params,
        extra: JSON,
        parsed: ParsedText | None,
        *,
        text: str | None = None,
        caption: str | None = None,
        parse_mode: str | None = None,
        file: SentFile | None = None,
    ) -> JSON:
        """Record one successful send and build the Message Telegram would answer."""
        markup = check_reply_markup(params.json_("reply_markup"))
        reply_to = self._reply_target(chat, params)
        paid = params.bool_("allow_paid_broadcast")
        now = time.monotonic()
        is_group = chat.type in ("group", "supergroup")
        if self.limits is not None:
            self.limits.check(chat.chat_id, is_group=is_group, paid=paid, now=now)
        message_id = chat.allocate_message_id()
        date = self._now()
        sent = SentMessage(
            chat_id=chat.chat_id,
            message_id=message_id,
            method=method,
            text=text,
            caption=caption,
            parse_mode=parse_mode,
            reply_markup=markup,
            file=file,
            reply_to_message_id=reply_to,
            disable_notification=params.bool_("disable_notification"),
            allow_paid_broadcast=paid,
            date=date,
            timestamp=now,
        )
        sent.show(parsed)
        message: JSON = {
            "message_id": message_id,
            "from": self.bot_user,
            "chat": chat.to_json(),
            "date": date,
            **extra,
        }
        if reply_to is not None:
            message["reply_to_message"] = strip_reply(chat.messages[reply_to])
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        chat.sent.append(sent)
        chat.sent_by_id[message_id] = sent
        chat.messages[message_id] = message
        self.sends.append((now, chat.chat_id, method))
        if self.limits is not None:
            self.limits.record(chat.chat_id, is_group=is_group, paid=paid, now=now)
        self._durable.changed()
        async with self._sent_cond:
            self._sent_cond.notify_all()
        return message

    # ------------------------------------------------------------------ editing

    async def _edit_message_text(self, params: Params) -> JSON:
        if params.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the simulator")
        chat = self._find_chat(params, sending=True)
        message_id = params.int_("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        sent = chat.sent_by_id.get(message_id)
        if sent is None or sent.deleted:
            raise bad_request("message to edit not found")
        if sent.text is None:
            raise bad_request("there is no text in the message to edit")
        text = params.str_("text") or ""
        parse_mode = params.str_("parse_mode")
        parsed = self._parse_text(text, parse_mode)
        markup = check_reply_markup(params.json_("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        old_markup = (
            sent.reply_markup
            if sent.reply_markup and "inline_keyboard" in sent.reply_markup
            else None
        )
        unchanged = parsed.text == sent.visible_text and parsed.entities == sent.entities
        if unchanged and markup == old_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.text, sent.parse_mode, sent.reply_markup = text, parse_mode, markup
        sent.show(parsed)
        sent.edit_date = self._now()
        message = {**chat.messages[message_id], "text": parsed.text, "edit_date": sent.edit_date}
        message.pop("reply_markup", None)
        message.pop("entities", None)
        if parsed.entities:
            message["entities"] = parsed.entities
        if markup is not None:
            message["reply_markup"] = markup
        chat.messages[message_id] = message
        self._durable.changed()
        return message

    # ------------------------------------------------------------------ deleting

    def _deletion_problem(self, chat: SimChat, message_id: int) -> str | None:
        """Why ``message_id`` cannot be deleted for everyone now (None: it can)."""
        message = chat.messages.get(message_id)
        if message is None:
            return "message to delete not found"
        sender = message.get("from", {}).get("id")
        if sender is None or (sender != self.bot_user["id"] and chat.type != "private"):
            return "message can't be deleted"
        if self._now() - int(message.get("date", 0)) >= DELETE_WINDOW:
            return "message can't be deleted for everyone"
        return None

    def _forget(self, chat: SimChat, message_id: int) -> None:
        chat.deleted_messages[message_id] = chat.messages.pop(message_id)
        sent = chat.sent_by_id.get(message_id)
        if sent is not None:
            sent.deleted = True

    async def _delete_message(self, params: Params) -> bool:
        chat = self._find_chat(params, sending=False)
        message_id = params.int_("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        problem = self._deletion_problem(chat, message_id)
        if problem is not None:
            raise bad_request(problem)
        self._forget(chat, message_id)
        self._durable.changed()
        return True

    async def _delete_messages(self, params: Params) -> bool:
        """Delete up to 100 messages; those that cannot be deleted are skipped, as Telegram does."""
        chat = self._find_chat(params, sending=False)
        ids = params.json_("message_ids")
        if not isinstance(ids, list) or not ids:
            raise bad_request("message identifiers are not specified")
        if len(ids) > MAX_DELETE_BATCH:
            raise bad_request("too many message identifiers specified")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise bad_request("can't parse message identifiers JSON array")
        deletable = [i for i in dict.fromkeys(ids) if self._deletion_problem(chat, i) is None]
        if not deletable:
            raise bad_request("message to delete not found")
        for message_id in deletable:
            self._forget(chat, message_id)
        self._durable.changed()
        return True

    def age_message(self, chat_id: int, message_id: int, seconds: float) -> None:
        """Make a message ``seconds`` older (for the 48-hour deletion rule) without waiting."""
        chat = self._chats.get(chat_id)
        store = chat.messages if chat is not None and message_id in chat.messages else None
        if chat is None or store is None:
            raise LookupError(f"no message {message_id} in chat {chat_id}")
        store[message_id] = {**store[message_id], "date": int(store[message_id]["date"] - seconds)}
        sent = chat.sent_by_id.get(message_id)
        if sent is not None:
            sent.date = int(sent.date - seconds)
        self._durable.changed()

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        """Whether message ``message_id`` of ``chat_id`` (either direction) was deleted."""
        chat = self._chats.get(chat_id)
        return chat is not None and message_id in chat.deleted_messages

    def history(self, chat_id: int) -> list[JSON]:
        """Every message of the chat in order, both directions, deleted ones marked."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        merged = {**chat.deleted_messages, **chat.messages}
        return [{**merged[i], "deleted": i in chat.deleted_messages} for i in sorted(merged)]
