"""A local, in-process fake of the Telegram Bot API (aiohttp server).

The bot side speaks the real Bot API wire format at ``/bot{token}/{method}`` so an unmodified
python-telegram-bot ``Bot``/``Application`` can talk to it (``base_url=sim.base_url``).
The user side lets tests, benchmarks and the terminal chat client act as people: through the
Python methods below or through the HTTP control API under ``/_sim/`` (``telegram_control``).

Two listeners: the bot port (:attr:`TelegramSimulator.port`: the Bot API, plus ``/_sim/`` for
``herald chat``, which only knows that port) and a control port of its own
(:attr:`TelegramSimulator.control_url`), which keeps answering while a "refuse" outage has closed
the bot port.

The parts: faults (scripted or random errors, latency, hangs, flood limits) in
``telegram_faults``; whole-service outages (down, hang, refuse) in ``telegram_outage``; update
delivery (getUpdates with its 409 conflicts, webhook) in ``telegram_updates``; the user side in
``telegram_users``; sending, editing and deleting (48-hour rule) in ``telegram_sending``, with
Telegram's HTML/MarkdownV2 parsing in ``telegram_markup`` and inline keyboard checks in
``telegram_keyboards``; reading what the bot sent and the rate counters in ``telegram_outbox``;
durable people and history (``state_path=``) in ``telegram_state``.

Time: message dates come from ``clock`` (default ``time.time``), so a test can move time or use
``age_message``; rate windows use ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from sandbox.telegram_control import ControlApi
from sandbox.telegram_faults import SEND_METHODS, FaultInjector, RateLimits
from sandbox.telegram_models import (
    JSON,
    ApiError,
    IdSequence,
    Params,
    SentFile,
    SimChat,
    SimUser,
    WebhookDelivery,
    bad_request,
    check_commands,
    read_params,
    scope_key,
)
from sandbox.telegram_outage import OutageState, check_mode
from sandbox.telegram_outbox import SentMessages
from sandbox.telegram_sending import BotMessages
from sandbox.telegram_state import SimState, StateFile
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


Handler = Callable[[Params], Awaitable[Any]]


class TelegramSimulator(UserActions, SentMessages, BotMessages):
    """The simulated Bot API server plus the people who use the bot.

    ``state_path``: a JSON file that keeps the people, chats and message history across
    restarts (read when the simulator is created, saved soon after changes and on stop).
    ``html_strict=False`` accepts a bare ``&`` and unknown HTML attributes, as Telegram does.
    """

    def __init__(
        self,
        token: str = "123456:SANDBOX-TOKEN",  # noqa: S107 - the sandbox's well-known fake token
        *,
        bot_username: str = "herald_sandbox_bot",
        bot_first_name: str = "Herald Sandbox",
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        html_strict: bool = True,
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
        self.clock = clock
        self.html_strict = html_strict
        self.faults = FaultInjector()
        self.limits: RateLimits | None = None
        self.outage = OutageState()
        self.received_count: Counter[str] = Counter()
        self.sends: list[tuple[float, int, str]] = []
        self.send_attempts: list[float] = []
        self.callback_answers: dict[str, JSON] = {}
        self._users: dict[int, SimUser] = {}
        self._chats: dict[int, SimChat] = {}
        self._files: dict[str, SentFile] = {}
        self._file_seq = IdSequence()
        self._update_seq = IdSequence()
        self._open_callbacks: set[str] = set()
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._sent_cond = asyncio.Condition()
        self._closing = asyncio.Event()
        self._held = 0
        self._held_changed = asyncio.Condition()
        self._release = asyncio.Event()
        self.updates = UpdateQueue(self._closing, self.outage.online)
        self._durable = StateFile(state_path, self._snapshot)
        self._restore(self._durable.load())
        self._runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None
        self._bot_site: web.TCPSite | None = None
        self._in_flight: set[asyncio.Transport] = set()
        self._outage_timer: asyncio.Task[None] | None = None
        self._host = "127.0.0.1"
        self._bind_host = "127.0.0.1"
        self._port: int | None = None
        self._control_port: int | None = None
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
            "deleteMessages": self._delete_messages,
            "sendChatAction": self._send_chat_action,
        }
        self._method_names = {name.lower(): name for name in self._handlers}

    # ------------------------------------------------------------------ durable state

    def _snapshot(self) -> SimState:
        return SimState(
            users=self._users,
            chats=self._chats,
            files=self._files,
            next_update_id=self._update_seq.next_value,
            next_file_number=self._file_seq.next_value,
        )

    def _restore(self, state: SimState | None) -> None:
        if state is None:
            return
        self._users, self._chats, self._files = state.users, state.chats, state.files
        self._update_seq.next_value = state.next_update_id
        self._file_seq.next_value = state.next_file_number
        logger.info(
            "Telegram simulator restored %d users and %d chats from %s",
            len(self._users),
            len(self._chats),
            self._durable.path,
        )

    @property
    def state_writes(self) -> int:
        """How many times the state file was written (debouncing keeps this low)."""
        return self._durable.writes

    async def save_state(self) -> None:
        """Write pending changes to ``state_path`` now (stop() does it too)."""
        await self._durable.close()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, control_port: int = 0) -> None:
        """Bind the bot port and the control port (0 picks free ones; see :attr:`port`)."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._closing.clear()
        # access_log=None: request paths carry the bot token, which must never be logged.
        runner = web.AppRunner(self._app(bot=True), access_log=None, shutdown_timeout=1.0)
        control = web.AppRunner(self._app(bot=False), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await control.setup()
        try:
            self._bot_site = web.TCPSite(runner, host, port)
            await self._bot_site.start()
            await web.TCPSite(control, host, control_port).start()
        except BaseException:
            await runner.cleanup()
            await control.cleanup()
            raise
        self._runner, self._control_runner = runner, control
        self._bind_host = host
        self._host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        self._port = int(runner.addresses[0][1])
        self._control_port = int(control.addresses[0][1])
        self.updates.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._durable.resume()
        logger.info(
            "Telegram Bot API simulator listening on %s:%d (control API on port %d)",
            host,
            self._port,
            self._control_port,
        )

    def _app(self, *, bot: bool) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        if bot:
            app.router.add_route("*", "/bot{token}/{method}", self._handle_bot)
            app.router.add_route("*", "/file/bot{token}/{path:.*}", self._handle_file)
        ControlApi(self).register(app)
        return app

    async def stop(self) -> None:
        """Release hung and long-polling calls, stop webhook delivery, save, close the server."""
        self._closing.set()
        self._release.set()  # held calls go on, so that the server can close
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        self.outage.release()
        async with self._sent_cond:
            self._sent_cond.notify_all()
        await self.updates.stop()
        if self.updates.http is not None:
            await self.updates.http.close()
            self.updates.http = None
        for runner in (self._runner, self._control_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._control_runner = self._bot_site = None
        self._port = self._control_port = None
        self.outage.begin(None, None)
        await self._durable.close()

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
        """The bot port (kept while a "refuse" outage has it closed)."""
        if self._port is None:
            raise RuntimeError("simulator is not running; await start() first")
        return self._port

    @property
    def control_port(self) -> int:
        if self._control_port is None:
            raise RuntimeError("simulator is not running; await start() first")
        return self._control_port

    def _origin(self, port: int) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self._origin(self.port)}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self._origin(self.port)}/file/bot"

    @property
    def control_url(self) -> str:
        """The control API on its own port (also served under ``/_sim`` of the bot port)."""
        return f"{self._origin(self.control_port)}/_sim"

    # ------------------------------------------------------------------ outages

    async def set_outage(self, mode: str | None, *, seconds: float | None = None) -> None:
        """Start a whole-service outage ("down", "hang" or "refuse"; see ``telegram_outage``),
        or end the current one with ``None``. With ``seconds`` it ends by itself."""
        checked = check_mode(mode)
        if seconds is not None and (checked is None or not seconds > 0):
            raise ValueError("seconds must be positive, and only given with an outage mode")
        timer, self._outage_timer = self._outage_timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        previous = self.outage.mode
        self.outage.begin(checked, seconds)
        if previous == "refuse" and checked != "refuse":
            await self._listen_again()
        elif checked == "refuse" and previous != "refuse":
            await self._refuse()
        if seconds is not None:
            self._outage_timer = asyncio.create_task(self._end_outage_after(seconds))
        if checked is not None:
            logger.info("simulating a Telegram outage (%s)", checked)
        elif previous is not None:
            logger.info("the simulated Telegram outage (%s) is over", previous)

    async def _end_outage_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        try:
            await self.set_outage(None)
        except OSError:
            logger.exception("could not listen again on the bot port after the outage")

    async def wait_for_outage_end(
        self,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper with a default deadline
    ) -> None:
        """Wait until an outage given ``seconds`` has ended by itself."""
        timer = self._outage_timer
        if timer is not None:
            async with asyncio.timeout(timeout):
                await asyncio.shield(timer)

    async def _refuse(self) -> None:
        """Close the bot port and cut its open calls: clients see refused or reset connections."""
        if self._bot_site is not None:
            await self._bot_site.stop()
            self._bot_site = None
        for transport in list(self._in_flight):
            transport.abort()
        self._in_flight.clear()

    async def _listen_again(self) -> None:
        if self._runner is None or self._port is None:
            return  # stopped meanwhile
        site = web.TCPSite(self._runner, self._bind_host, self._port, reuse_address=True)
        await site.start()
        self._bot_site = site

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

    def hold_next(self, method: str, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` wait, unanswered, until :meth:`release_held`
        (then they are carried out as usual): a send caught in flight."""
        self._release.clear()
        self.faults.hold_next(method, count)

    async def wait_held(
        self,
        count: int,
        timeout: float = 20.0,  # noqa: ASYNC109 - a test helper with a default deadline
    ) -> None:
        """Until ``count`` calls are being held."""
        async with asyncio.timeout(timeout), self._held_changed:
            await self._held_changed.wait_for(lambda: self._held >= count)

    def release_held(self) -> None:
        self._release.set()

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
        """Forget sent messages, pending updates, counters and faults (users and chats stay;
        message and update ids keep counting up)."""
        for chat in self._chats.values():
            chat.sent.clear()
            chat.sent_by_id.clear()
            chat.messages.clear()
            chat.deleted_messages.clear()
        self.reset_counters()
        self.callback_answers.clear()
        self._open_callbacks.clear()
        self.updates.reset()
        self.faults.reset()
        self.release_held()
        self.limits = None
        self._durable.changed()

    def reset_counters(self) -> None:
        """Start the rate counters afresh (``sends``, ``received_count``, per-second maxima)."""
        self.sends.clear()
        self.send_attempts.clear()
        self.received_count.clear()

    # ------------------------------------------------------------------ HTTP entry points

    async def _handle_file(self, request: web.Request) -> web.Response:
        cut = self._cut(request)
        if cut is not None:
            return cut
        try:
            await self.outage.check()
        except ApiError as exc:
            return exc.response()
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    def _cut(self, request: web.Request) -> web.Response | None:
        """During a "refuse" outage a call on a surviving connection gets a reset."""
        if self.outage.mode != "refuse":
            return None
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)  # never reaches the client: the connection is gone

    async def _handle_bot(self, request: web.Request) -> web.Response:
        cut = self._cut(request)
        if cut is not None:
            return cut
        transport = request.transport
        if transport is not None:
            self._in_flight.add(transport)
        try:
            return await self._answer_bot(request)
        finally:
            if transport is not None:
                self._in_flight.discard(transport)

    async def _answer_bot(self, request: web.Request) -> web.Response:
        method = self._method_names.get(request.match_info["method"].lower())
        token_ok = hmac.compare_digest(request.match_info["token"].encode(), self._token.encode())
        if token_ok and method is not None:
            self.received_count[method] += 1
            if method in SEND_METHODS:
                self.send_attempts.append(time.monotonic())
        try:
            await self.outage.check()  # an outage answers before anything is looked at
        except ApiError as exc:
            return exc.response()
        if not token_ok:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if method is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
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
        if self.faults.take_hold(method):
            async with self._held_changed:
                self._held += 1
                self._held_changed.notify_all()
            await self._release.wait()
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

    async def _get_chat(self, params: Params) -> JSON:
        return self._find_chat(params, sending=False).to_full_json()

    async def _send_chat_action(self, params: Params) -> bool:
        self._find_chat(params, sending=True)
        if params.str_("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
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
        self._durable.changed()
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
        """Traffic so far. ``max_per_second`` is the busiest one-second window of successful
        sends from every client of the token together; ``max_attempts_per_second`` counts every
        send call received, refused ones included."""
        return {
            "received_count": dict(self.received_count),
            "sends": len(self.sends),
            "distinct_chats": len({chat_id for _, chat_id, _ in self.sends}),
            "max_per_second": self.max_per_window(1.0),
            "max_attempts_per_second": self.max_attempts_per_window(1.0),
            "send_span_seconds": self.sends[-1][0] - self.sends[0][0] if self.sends else 0.0,
            "min_same_chat_interval": self.min_same_chat_interval(),
            "pending_updates": self.updates.pending_count,
            "webhook_set": self.updates.webhook_url is not None,
            "webhook_deliveries": len(self.webhook_deliveries),
            "users": len(self._users),
            "chats": len(self._chats),
            "faults": self.faults.describe(),
            "limits_enforced": self.limits is not None,
            "outage": self.outage.describe(),
        }
