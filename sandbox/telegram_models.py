"""Data records, request parsing and JSON builders for the Telegram Bot API simulator.

Everything here is plain data and pure functions; the server lives in ``telegram_simulator``.
The JSON produced matches the shapes of the real Bot API closely enough for
python-telegram-bot to deserialise it (``Message``, ``User``, ``Chat``, ``ChatFullInfo``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from sandbox.telegram_entities import ParsedText, utf16_slice
from sandbox.telegram_entities import utf16_len as utf16_len
from sandbox.telegram_errors import JSON as JSON
from sandbox.telegram_errors import ApiError as ApiError
from sandbox.telegram_errors import bad_request as bad_request
from sandbox.telegram_errors import too_many_requests as too_many_requests
from sandbox.telegram_keyboards import check_reply_markup as check_reply_markup
from sandbox.telegram_markup import plain_text as plain_text

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

# Update kinds delivered when ``allowed_updates`` is empty or never given (Bot API docs).
DEFAULT_ALLOWED_UPDATES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


class IdSequence:
    """A counter (update_id, file numbers) whose next value can be saved and restored."""

    def __init__(self, start: int = 1) -> None:
        self.next_value = start

    def __iter__(self) -> IdSequence:
        return self

    def __next__(self) -> int:
        value = self.next_value
        self.next_value += 1
        return value


@dataclass(slots=True)
class SimUser:
    """A simulated Telegram user (a person, never a bot)."""

    user_id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"

    def to_json(self) -> JSON:
        data: JSON = {"id": self.user_id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(slots=True)
class SentFile:
    """A file the bot sent: uploaded bytes (name, size, sha256) or a file_id/URL reference."""

    file_id: str
    file_unique_id: str
    name: str | None
    size: int | None
    sha256: str | None
    mime_type: str | None = None
    url: str | None = None

    def to_json(self) -> JSON:
        return {
            "file_id": self.file_id,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "mime_type": self.mime_type,
            "url": self.url,
        }


@dataclass(slots=True)
class SentMessage:
    """One message the bot sent successfully (as recorded by the simulator)."""

    chat_id: int
    message_id: int
    method: str
    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: JSON | None
    file: SentFile | None
    reply_to_message_id: int | None
    disable_notification: bool
    allow_paid_broadcast: bool
    date: int
    timestamp: float
    edit_date: int | None = None
    deleted: bool = False
    visible_text: str | None = None
    """What a Telegram app shows: the text or caption after parsing, trimmed."""
    entities: list[JSON] = field(default_factory=list)
    """The parsed formatting of ``visible_text`` (offsets and lengths in UTF-16 units)."""

    @property
    def body(self) -> str | None:
        """The text of a text message or the caption of a media message (as sent, raw)."""
        return self.text if self.text is not None else self.caption

    def show(self, parsed: ParsedText | None) -> None:
        self.visible_text = parsed.text if parsed is not None else None
        self.entities = list(parsed.entities) if parsed is not None else []

    def formatted(self, kind: str) -> list[str]:
        """The pieces of the visible text formatted as ``kind`` (``"bold"``, ``"code"``...)."""
        text = self.visible_text or ""
        return [
            utf16_slice(text, e["offset"], e["length"]) for e in self.entities if e["type"] == kind
        ]

    def links(self) -> list[tuple[str, str]]:
        """``(shown text, url)`` of every ``text_link`` in the visible text."""
        text = self.visible_text or ""
        return [
            (utf16_slice(text, e["offset"], e["length"]), e["url"])
            for e in self.entities
            if e["type"] == "text_link"
        ]

    @property
    def inline_keyboard(self) -> list[list[JSON]]:
        """The inline keyboard's rows of buttons ([] when the message has none)."""
        rows = (self.reply_markup or {}).get("inline_keyboard")
        return rows if isinstance(rows, list) else []

    def url_buttons(self) -> list[tuple[str, str]]:
        """``(text, url)`` of every URL button of the inline keyboard, row by row."""
        return [(b["text"], b["url"]) for row in self.inline_keyboard for b in row if "url" in b]

    @property
    def document(self) -> SentFile | None:
        return self.file if self.method == "sendDocument" else None

    @property
    def photo(self) -> SentFile | None:
        return self.file if self.method == "sendPhoto" else None

    def to_json(self) -> JSON:
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "method": self.method,
            "text": self.text,
            "caption": self.caption,
            "parse_mode": self.parse_mode,
            # What a Telegram app would show (markup rendered); checked when it was sent.
            "visible_text": self.visible_text,
            "entities": self.entities,
            "reply_markup": self.reply_markup,
            "file": self.file.to_json() if self.file else None,
            "reply_to_message_id": self.reply_to_message_id,
            "disable_notification": self.disable_notification,
            "allow_paid_broadcast": self.allow_paid_broadcast,
            "date": self.date,
            "edit_date": self.edit_date,
            "deleted": self.deleted,
        }


@dataclass(slots=True)
class SimChat:
    """A chat known to the simulator, with its per-chat message storage."""

    chat_id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    blocked: bool = False
    deactivated: bool = False
    migrated_to: int | None = None
    next_message_id: int = 1
    sent: list[SentMessage] = field(default_factory=list)
    sent_by_id: dict[int, SentMessage] = field(default_factory=dict)
    messages: dict[int, JSON] = field(default_factory=dict)  # message JSON, both directions
    deleted_messages: dict[int, JSON] = field(default_factory=dict)  # gone, kept for history

    def allocate_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def to_json(self) -> JSON:
        data: JSON = {"id": self.chat_id, "type": self.type}
        for key in ("title", "username", "first_name", "last_name"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data

    def to_full_json(self) -> JSON:
        data = self.to_json()
        data.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return data


@dataclass(slots=True)
class WebhookDelivery:
    """The outcome of POSTing one update to the webhook (``status`` is None on network errors)."""

    update_id: int
    chat_id: int | None
    status: int | None
    error: str | None = None


@dataclass(slots=True)
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes


# --------------------------------------------------------------------------- request parameters


class Params:
    """Bot API call parameters from a query string, form, multipart body or JSON body.

    Form and multipart values are strings; nested objects arrive JSON-encoded (as PTB sends them).
    """

    def __init__(self, values: dict[str, Any], files: dict[str, UploadedFile]) -> None:
        self.values = values
        self.files = files

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "") or name in self.files

    def str_(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        raise bad_request(f"invalid {name} specified")

    def int_(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad_request(f"invalid {name} specified")

    def bool_(self, name: str) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
            return value.lower() in ("true", "1")
        raise bad_request(f"invalid {name} specified")

    def json_(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def file_(self, name: str) -> UploadedFile | str | None:
        """An uploaded file part, or a file_id/URL string; ``attach://x`` refers to part ``x``."""
        if name in self.files:
            return self.files[name]
        value = self.str_(name)
        if value and value.startswith("attach://"):
            attached = self.files.get(value.removeprefix("attach://"))
            if attached is None:
                raise bad_request(f"can't find attached file {value!r}")
            return attached
        return value or None


MAX_UPLOAD_BYTES = 50 * 1024 * 1024


async def read_params(request: web.Request) -> Params:
    """Parse the parameters of a Bot API call from any of the encodings Telegram accepts."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.method != "POST" or not request.body_exists:
        return Params(values, files)
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON request body") from None
        if not isinstance(body, dict):
            raise bad_request("JSON request body must be an object")
        values.update(body)
    elif content_type == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is None:
                values[part.name] = await part.text()
                continue
            chunks: list[bytes] = []
            size = 0
            while chunk := await part.read_chunk():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "Request Entity Too Large")
                chunks.append(chunk)
            content = part.headers.get("Content-Type")
            files[part.name] = UploadedFile(part.filename, content, b"".join(chunks))
    else:  # application/x-www-form-urlencoded (and anything else aiohttp can parse as a form)
        form = await request.post()
        values.update({key: value for key, value in form.items() if isinstance(value, str)})
    return Params(values, files)


def command_entities(text: str) -> list[JSON]:
    """The ``bot_command`` entity Telegram attaches to a text starting with ``/``."""
    if not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


def check_commands(commands: Any) -> list[dict[str, str]]:
    if not isinstance(commands, list):
        raise bad_request('field "commands" must be an Array')
    if len(commands) > 100:
        raise bad_request("too many commands specified")
    checked: list[dict[str, str]] = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        checked.append({"command": command, "description": description})
    return checked


def scope_key(scope: Any) -> str:
    if scope is None:
        scope = {"type": "default"}
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise bad_request("can't parse BotCommandScope")
    return json.dumps(scope, sort_keys=True)


def strip_reply(message: JSON) -> JSON:
    """A message as embedded in ``reply_to_message`` (Telegram does not nest replies deeper)."""
    return {key: value for key, value in message.items() if key != "reply_to_message"}
