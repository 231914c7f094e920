"""Data records, request parsing and JSON builders for the Telegram Bot API simulator.

Everything here is plain data and pure functions; the server lives in ``telegram_simulator``.
The JSON produced matches the shapes of the real Bot API closely enough for
python-telegram-bot to deserialise it (``Message``, ``User``, ``Chat``, ``ChatFullInfo``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from aiohttp import BodyPartReader, web

JSON = dict[str, Any]

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


class ApiError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, error_code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(f"{error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body

    def response(self) -> web.Response:
        return web.json_response(self.to_json(), status=self.error_code)


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


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

    @property
    def body(self) -> str | None:
        """The text of a text message or the caption of a media message."""
        return self.text if self.text is not None else self.caption

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
            "visible_text": plain_text(self.body, self.parse_mode) if self.body else None,
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


# --------------------------------------------------------------------------- text and markup checks

_HTML_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "tg-emoji", "code", "pre", "blockquote",
    }
)  # fmt: skip
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)?([^<>]*)>")
_MD2_RESERVED = frozenset("#+-={}.!")


def _parse_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


def _html_plain_text(text: str) -> str:
    """Validate Telegram-HTML like Telegram does (tag set and nesting); return the plain text."""
    stack: list[str] = []
    plain: list[str] = []
    pos = 0
    for match in _TAG_RE.finditer(text):
        plain.append(text[pos : match.start()])
        pos = match.end()
        closing, name = match.group(1) == "/", (match.group(2) or "").lower()
        offset = len(text[: match.start()].encode())
        if closing:
            if not stack or stack[-1] != name:
                expected = f'"</{stack[-1]}>"' if stack else "no end tag"
                raise _parse_error(
                    f"Unmatched end tag at byte offset {offset}, expected {expected}, "
                    f'found "</{name}>"'
                )
            stack.pop()
        elif name not in _HTML_TAGS:
            raise _parse_error(f'Unsupported start tag "{name}" at byte offset {offset}')
        else:
            stack.append(name)
    plain.append(text[pos:])
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    joined = "".join(plain)
    if "<" in joined:
        offset = len(joined[: joined.index("<")].encode())
        raise _parse_error(f'Unsupported start tag "" at byte offset {offset}')
    return unescape(joined)


def _check_markdown_v2(text: str) -> None:
    """Reject unescaped reserved characters outside code spans and link URLs (MarkdownV2)."""
    in_code = False
    in_url = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "`":
            in_code = not in_code
        elif in_code:
            continue
        elif in_url:
            in_url = char != ")"
        elif char == "(" and index > 0 and text[index - 1] == "]":
            in_url = True
        elif char in _MD2_RESERVED and not (char == "!" and text[index + 1 : index + 2] == "["):
            raise _parse_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text as the recipient sees it; raises the 400 Telegram gives for malformed markup."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _html_plain_text(text)
    if mode == "markdownv2":
        _check_markdown_v2(text)
    elif mode not in ("", "markdown"):
        raise bad_request("unsupported parse_mode")
    return text


def check_reply_markup(markup: Any) -> JSON | None:
    """Validate the reply_markup object kinds Telegram accepts; return it as a dict."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "inline_keyboard" must be an Array of Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request("inline keyboard button text is empty")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "keyboard" must be an Array of Array')
    elif not (markup.get("remove_keyboard") or markup.get("force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup


def command_entities(text: str) -> list[JSON]:
    """The ``bot_command`` entity Telegram attaches to a text starting with ``/``."""
    if not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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
