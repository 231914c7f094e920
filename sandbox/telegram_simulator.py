"""A local, in-process fake of the Telegram Bot API (aiohttp server).

The bot side speaks the real Bot API wire format at ``/bot{token}/{method}`` so an unmodified
python-telegram-bot ``Bot``/``Application`` can talk to it (``base_url=sim.base_url``).
The user side lets tests, benchmarks and the terminal chat client act as people: through the
Python methods below or through the HTTP control API under ``/_sim/`` (``telegram_control``).
Faults (scripted or random errors, latency, hangs, flood limits) come from ``telegram_faults``;
update delivery (getUpdates, webhook) from ``telegram_updates``; the user side from
``telegram_users``; reading what the bot sent and the rate counters from ``telegram_outbox``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import mimetypes
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from sandbox.telegram_control import ControlApi
from sandbox.telegram_faults import FaultInjector, RateLimits
from sandbox.telegram_models import (
    JSON,
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    ApiError,
    Params,
    SentFile,
    SentMessage,
    SimChat,
    SimUser,
    UploadedFile,
    WebhookDelivery,
    bad_request,
    check_commands,
    check_reply_markup,
    plain_text,
    read_params,
    scope_key,
    strip_reply,
)
from sandbox.telegram_outbox import SentMessages
from sandbox.telegram_updates import Described, UpdateQueue
from sandbox.telegram_users import UserActions

logger = logging.getLogger(__name__)

_CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)  # fmt: skip
_FILE_LIMITS = {"photo": 10 * 1024 * 1024, "document": 50 * 1024 * 1024}


Handler = Callable[[Params], Awaitable[Any]]


class TelegramSimulator(UserActions, SentMessages):
    """The simulated Bot API server plus the people who use the bot."""

    def __init__(
        self,
        token: str = "123456:SANDBOX-TOKEN",  # noqa: S107 - the sandbox's well-known fake token
        *,
        bot_username: str = "herald_sandbox_bot",
        bot_first_name: str = "Herald Sandbox",
    ) -> None:
        self._token = token
        head = token.split(":", 1)[0]
        self.bot_user: JSON = {
            "id": int(head) if head.isdigit() else 123456,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.faults = FaultInjector()
        self.limits: RateLimits | None = None
        self.received_count: Counter[str] = Counter()
        self.sends: list[tuple[float, int, str]] = []
        self.callback_answers: dict[str, JSON] = {}
        self._users: dict[int, SimUser] = {}
        self._chats: dict[int, SimChat] = {}
        self._files: dict[str, SentFile] = {}
        self._file_seq = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._update_seq = itertools.count(1)
        self._sent_cond = asyncio.Condition()
        self._closing = asyncio.Event()
        self.updates = UpdateQueue(self._closing)
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._ok,
            "close": self._ok,
            "getUpdates": self.updates.get_updates,
            "setWebhook": self.updates.set_webhook,
            "deleteWebhook": self.updates.delete_webhook,
            "getWebhookInfo": self.updates.webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getChat": self._get_chat,
            "answerCallbackQuery": self._answer_callback_query,
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
        }
        self._method_names = {name.lower(): name for name in self._handlers}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind the HTTP server (port 0 picks a free port; see :attr:`port`)."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._closing.clear()
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_bot)
        app.router.add_route("*", "/file/bot{token}/{path:.*}", self._handle_file)
        ControlApi(self).register(app)
        # access_log=None: request paths carry the bot token, which must never be logged.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        self._port = int(runner.addresses[0][1])
        self.updates.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        logger.info("Telegram Bot API simulator listening on %s:%d", host, self._port)

    async def stop(self) -> None:
        """Release hung and long-polling calls, stop webhook delivery and close the server."""
        self._closing.set()
        async with self._sent_cond:
            self._sent_cond.notify_all()
        await self.updates.stop()
        if self.updates.http is not None:
            await self.updates.http.close()
            self.updates.http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def token(self) -> str:
        return self._token

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator is not running; await start() first")
        return self._port

    @property
    def _origin(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self._origin}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self._origin}/file/bot"

    @property
    def control_url(self) -> str:
        return f"{self._origin}/_sim"

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        count: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """The next ``count`` calls of ``method`` (optionally only for ``chat_id``) fail."""
        self.faults.fail_next(
            method,
            error_code=error_code,
            description=description,
            retry_after=retry_after,
            count=count,
            chat_id=chat_id,
        )

    def set_fault_rates(
        self,
        rate_429: float = 0,
        rate_5xx: float = 0,
        retry_after: int = 1,
        seed: int | None = None,
    ) -> None:
        """Random 429/502 answers on send* methods, reproducible with ``seed``."""
        self.faults.set_fault_rates(rate_429, rate_5xx, retry_after, seed)

    def set_latency(self, seconds: float, method: str | None = None, jitter: float = 0.0) -> None:
        """Delay every call (or every call of ``method``) by ``seconds`` plus a random share of
        ``jitter``, so calls overtake each other; 0 and 0 remove it."""
        self.faults.set_latency(seconds, method, jitter)

    def hang_next(self, method: str, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` never answer (until :meth:`stop`)."""
        self.faults.hang_next(method, count)

    def enforce_limits(
        self,
        global_per_second: int | None = 30,
        per_chat_per_second: int | None = 1,
        per_group_per_minute: int | None = 20,
    ) -> None:
        """Answer 429 with retry_after when Telegram's flood limits would be exceeded."""
        self.limits = RateLimits(global_per_second, per_chat_per_second, per_group_per_minute)

    def disable_limits(self) -> None:
        self.limits = None

    def reset(self) -> None:
        """Forget sent messages, pending updates, counters and faults (users and chats stay)."""
        for chat in self._chats.values():
            chat.sent.clear()
            chat.sent_by_id.clear()
            chat.messages.clear()
        self.sends.clear()
        self.received_count.clear()
        self.callback_answers.clear()
        self._open_callbacks.clear()
        self.updates.reset()
        self.faults.reset()
        self.limits = None

    # ------------------------------------------------------------------ HTTP entry points

    async def _handle_file(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _handle_bot(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"].encode(), self._token.encode()):
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = self._method_names.get(request.match_info["method"].lower())
        if method is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        self.received_count[method] += 1
        try:
            params = await read_params(request)
            result = await self._call(method, params)
        except ApiError as exc:
            if exc.error_code >= 500 or exc.error_code == 429:
                logger.debug("%s answered %d (%s)", method, exc.error_code, exc.description)
            return exc.response()
        if isinstance(result, Described):
            body = {"ok": True, "result": result.result, "description": result.description}
            return web.json_response(body)
        return web.json_response({"ok": True, "result": result})

    async def _call(self, method: str, params: Params) -> Any:
        if self.faults.take_hang(method):
            logger.info("simulating a %s call that never answers", method)
            await self._closing.wait()
            raise ApiError(503, "Service Unavailable: simulator stopped")
        delay = self.faults.latency_for(method)
        if delay > 0:
            await asyncio.sleep(delay)  # simulated network/server latency
        chat_hint: int | None
        try:
            chat_hint = params.int_("chat_id")
        except ApiError:
            chat_hint = None
        failure = self.faults.take_failure(method, chat_hint) or self.faults.random_failure(method)
        if failure is not None:
            raise failure
        return await self._handlers[method](params)

    # ------------------------------------------------------------------ bot methods: basics

    async def _get_me(self, params: Params) -> JSON:
        return dict(self.bot_user)

    async def _ok(self, params: Params) -> bool:
        return True

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

    async def _get_chat(self, params: Params) -> JSON:
        return self._find_chat(params, sending=False).to_full_json()

    async def _send_chat_action(self, params: Params) -> bool:
        self._find_chat(params, sending=True)
        if params.str_("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # ------------------------------------------------------------------ bot methods: sending

    @staticmethod
    def _visible_text(text: str, parse_mode: str | None) -> str:
        if not text.strip():
            raise bad_request("message text is empty")
        visible = plain_text(text, parse_mode)
        if not visible.strip():
            raise bad_request("message text is empty")
        if len(visible) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        return visible

    async def _send_message(self, params: Params) -> JSON:
        chat = self._find_chat(params, sending=True)
        text = params.str_("text") or ""
        parse_mode = params.str_("parse_mode")
        visible = self._visible_text(text, parse_mode)
        return await self._deliver(
            chat, "sendMessage", params, {"text": visible}, text=text, parse_mode=parse_mode
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
        if caption is not None:
            visible = plain_text(caption, parse_mode)
            if len(visible) > MAX_CAPTION_LENGTH:
                raise bad_request("message caption is too long")
            extra["caption"] = visible
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
            chat, method, params, extra, caption=caption, parse_mode=parse_mode, file=file
        )

    def _store_file(self, source: UploadedFile | str, kind: str) -> SentFile:
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
        elif source.startswith(("http://", "https://")):
            name = PurePosixPath(urlsplit(source).path).name or None
            mime = mimetypes.guess_type(name or "")[0]
            file = SentFile(file_id, unique_id, name, None, None, mime, url=source)
        else:
            known = self._files.get(source)
            if known is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return known
        self._files[file.file_id] = file
        return file

    async def _deliver(
        self,
        chat: SimChat,
        method: str,
        params: Params,
        extra: JSON,
        *,
        text: str | None = None,
        caption: str | None = None,
        parse_mode: str | None = None,
        file: SentFile | None = None,
    ) -> JSON:
        """Record one successful send and build the Message Telegram would answer."""
        markup = check_reply_markup(params.json_("reply_markup"))
        reply_to = params.int_("reply_to_message_id")
        allow_without_reply = params.bool_("allow_sending_without_reply")
        reply_parameters = params.json_("reply_parameters")
        if isinstance(reply_parameters, dict):
            reply_to = reply_parameters.get("message_id", reply_to)
            allow_without_reply = bool(reply_parameters.get("allow_sending_without_reply"))
        if reply_to is not None and reply_to not in chat.messages:
            if not allow_without_reply:
                raise bad_request("message to be replied not found")
            reply_to = None
        paid = params.bool_("allow_paid_broadcast")
        now = time.monotonic()
        is_group = chat.type in ("group", "supergroup")
        if self.limits is not None:
            self.limits.check(chat.chat_id, is_group=is_group, paid=paid, now=now)
        message_id = chat.allocate_message_id()
        date = int(time.time())
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
        async with self._sent_cond:
            self._sent_cond.notify_all()
        return message

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
        visible = self._visible_text(text, parse_mode)
        markup = check_reply_markup(params.json_("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        old_markup = (
            sent.reply_markup
            if sent.reply_markup and "inline_keyboard" in sent.reply_markup
            else None
        )
        if text == sent.text and markup == old_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.text, sent.parse_mode, sent.reply_markup = text, parse_mode, markup
        sent.edit_date = int(time.time())
        message = {**chat.messages[message_id], "text": visible, "edit_date": sent.edit_date}
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        chat.messages[message_id] = message
        return message

    async def _delete_message(self, params: Params) -> bool:
        chat = self._find_chat(params, sending=False)
        message_id = params.int_("message_id")
        if message_id is None or chat.messages.pop(message_id, None) is None:
            raise bad_request("message to delete not found")
        sent = chat.sent_by_id.get(message_id)
        if sent is not None:
            sent.deleted = True
        return True

    async def _answer_callback_query(self, params: Params) -> bool:
        query_id = params.str_("callback_query_id")
        if not query_id or query_id not in self._open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.str_("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        self.callback_answers[query_id] = {
            "text": text,
            "show_alert": params.bool_("show_alert"),
            "url": params.str_("url"),
            "cache_time": params.int_("cache_time"),
        }
        return True

    # ------------------------------------------------------------------ bot methods: commands

    def _command_key(self, params: Params) -> tuple[str, str]:
        return scope_key(params.json_("scope")), params.str_("language_code") or ""

    async def _set_my_commands(self, params: Params) -> bool:
        commands = check_commands(params.json_("commands"))
        key = self._command_key(params)
        if commands:
            self._commands[key] = commands
        else:
            self._commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: Params) -> list[dict[str, str]]:
        return list(self._commands.get(self._command_key(params), []))

    async def _delete_my_commands(self, params: Params) -> bool:
        self._commands.pop(self._command_key(params), None)
        return True

    def commands(
        self, language_code: str | None = None, *, scope: JSON | None = None
    ) -> list[dict[str, str]]:
        """The commands a user with ``language_code`` sees (falls back to the default list)."""
        key = scope_key(scope)
        found = self._commands.get((key, language_code or ""))
        if found is None and language_code:
            found = self._commands.get((key, ""))
        return list(found or [])

    # ------------------------------------------------------------------ updates

    async def _emit(self, kind: str, payload: JSON, chat_key: int | None, update_id: int) -> int:
        return await self.updates.emit(kind, payload, chat_key, update_id)

    @property
    def pending_updates(self) -> int:
        """Updates waiting for getUpdates (not yet confirmed with ``offset``)."""
        return self.updates.pending_count

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST so far, with the HTTP status the webhook answered."""
        return self.updates.deliveries

    async def wait_for_webhook_deliveries(
        self,
        count: int,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper with a default deadline
    ) -> list[WebhookDelivery]:
        """Wait until at least ``count`` webhook POSTs have completed (any status)."""
        return await self.updates.wait_for_deliveries(count, timeout)

    def stats(self) -> JSON:
        return {
            "received_count": dict(self.received_count),
            "sends": len(self.sends),
            "distinct_chats": len({chat_id for _, chat_id, _ in self.sends}),
            "max_per_second": self.max_per_window(1.0),
            "send_span_seconds": self.sends[-1][0] - self.sends[0][0] if self.sends else 0.0,
            "min_same_chat_interval": self.min_same_chat_interval(),
            "pending_updates": self.updates.pending_count,
            "webhook_set": self.updates.webhook_url is not None,
            "webhook_deliveries": len(self.webhook_deliveries),
            "users": len(self._users),
            "chats": len(self._chats),
            "faults": self.faults.describe(),
            "limits_enforced": self.limits is not None,
        }
