"""HTTP control API of the Telegram simulator, under ``/_sim/``.

Lets another process (the ``herald chat`` terminal client, a benchmark driver) play users, read
what the bot sent, inject faults and outages (``POST /_sim/outage``), age messages for the
48-hour deletion rule and reset the rate counters (``POST /_sim/counters/reset``).
Errors answer ``{"ok": false, "error": ..., "field": ...}`` with 400 (bad
input, naming the field), 404 (unknown user or chat) or 409 (the action is impossible right now).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.telegram_models import JSON
from sandbox.telegram_outage import OUTAGE_MODES

if TYPE_CHECKING:
    from sandbox.telegram_simulator import TelegramSimulator

MAX_POLL_SECONDS = 60.0


class ControlError(Exception):
    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def _invalid(field: str, message: str) -> ControlError:
    return ControlError(400, field, f"{field}: {message}")


async def _body(request: web.Request) -> JSON:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _invalid("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise _invalid("body", "must be a JSON object")
    return body


def _int(source: JSON, name: str, *, required: bool = False) -> int | None:
    value = source.get(name)
    if value is None:
        if required:
            raise _invalid(name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        raise _invalid(name, "must be an integer")
    return value


def _float(source: JSON, name: str, default: float) -> float:
    value = source.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(name, "must be a number")
    try:
        number = float(value)
    except ValueError:
        raise _invalid(name, "must be a number") from None
    if number < 0 or number != number:
        raise _invalid(name, "must be a non-negative number")
    return number


def _str(source: JSON, name: str, *, required: bool = False) -> str | None:
    value = source.get(name)
    if value is None or value == "":
        if required:
            raise _invalid(name, "is required")
        return None
    if not isinstance(value, str):
        raise _invalid(name, "must be a string")
    return value


def _path_int(request: web.Request, name: str) -> int:
    return _int(dict(request.match_info), name, required=True) or 0


Route = Callable[[web.Request], Awaitable[JSON]]


class ControlApi:
    def __init__(self, sim: TelegramSimulator) -> None:
        self.sim = sim

    def register(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Route]] = [
            ("POST", "/_sim/users", self.add_user),
            ("POST", "/_sim/users/{user_id}/text", self.send_text),
            ("POST", "/_sim/users/{user_id}/contact", self.send_contact),
            ("POST", "/_sim/users/{user_id}/button", self.press_button),
            ("POST", "/_sim/users/{user_id}/block", self.block),
            ("POST", "/_sim/users/{user_id}/unblock", self.unblock),
            ("GET", "/_sim/chats/{chat_id}/messages", self.messages),
            ("GET", "/_sim/commands", self.commands),
            ("GET", "/_sim/stats", self.stats),
            ("POST", "/_sim/chats/{chat_id}/messages/{message_id}/age", self.age_message),
            ("POST", "/_sim/faults", self.faults),
            ("POST", "/_sim/outage", self.outage),
            ("POST", "/_sim/counters/reset", self.reset_counters),
            ("POST", "/_sim/reset", self.reset),
        ]
        for method, path, route in routes:
            app.router.add_route(method, path, self._wrap(route))

    @staticmethod
    def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                result = await route(request)
            except ControlError as exc:
                body = {"ok": False, "error": exc.message, "field": exc.field}
                return web.json_response(body, status=exc.status)
            except LookupError as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=404)
            except (RuntimeError, ValueError) as exc:
                return web.json_response({"ok": False, "error": str(exc)}, status=409)
            return web.json_response({"ok": True, **result})

        return handler

    def _known_user(self, request: web.Request) -> int:
        user_id = _path_int(request, "user_id")
        if not self.sim.has_user(user_id):
            raise ControlError(404, "user_id", f"user_id: unknown user {user_id}")
        return user_id

    async def add_user(self, request: web.Request) -> JSON:
        body = await _body(request)
        user_id = _int(body, "user_id", required=True) or 0
        if user_id <= 0:
            raise _invalid("user_id", "must be a positive integer")
        user = self.sim.add_user(
            user_id,
            _str(body, "first_name", required=True) or "",
            last_name=_str(body, "last_name"),
            username=_str(body, "username"),
            language_code=_str(body, "language_code") or "en",
        )
        return {"user": user.to_json()}

    async def send_text(self, request: web.Request) -> JSON:
        user_id = self._known_user(request)
        body = await _body(request)
        text = _str(body, "text", required=True) or ""
        return {"update_id": await self.sim.send_text(user_id, text)}

    async def send_contact(self, request: web.Request) -> JSON:
        user_id = self._known_user(request)
        body = await _body(request)
        phone = _str(body, "phone_number", required=True) or ""
        first_name = _str(body, "first_name")
        if "contact_user_id" in body:
            owner = _int(body, "contact_user_id")
            update_id = await self.sim.send_contact(
                user_id, phone, contact_user_id=owner, first_name=first_name
            )
        else:
            update_id = await self.sim.send_contact(user_id, phone, first_name=first_name)
        return {"update_id": update_id}

    async def press_button(self, request: web.Request) -> JSON:
        user_id = self._known_user(request)
        body = await _body(request)
        data = _str(body, "data", required=True) or ""
        message_id = _int(body, "message_id")
        update_id = await self.sim.press_button(user_id, data, message_id=message_id)
        return {"update_id": update_id, "callback_query_id": str(update_id)}

    async def block(self, request: web.Request) -> JSON:
        return {"update_id": await self.sim.block_bot(self._known_user(request))}

    async def unblock(self, request: web.Request) -> JSON:
        return {"update_id": await self.sim.unblock_bot(self._known_user(request))}

    async def messages(self, request: web.Request) -> JSON:
        chat_id = _path_int(request, "chat_id")
        query = dict(request.query)
        after = _int(query, "after") or 0
        timeout = min(_float(query, "timeout", 0.0), MAX_POLL_SECONDS)
        if not self.sim.has_chat(chat_id):
            raise ControlError(404, "chat_id", f"chat_id: unknown chat {chat_id}")
        found = await self.sim.wait_for_messages_after(chat_id, after, timeout)
        return {"messages": [message.to_json() for message in found]}

    async def commands(self, request: web.Request) -> JSON:
        language = _str(dict(request.query), "language_code")
        return {"commands": self.sim.commands(language)}

    async def stats(self, request: web.Request) -> JSON:
        return {"stats": self.sim.stats()}

    async def faults(self, request: web.Request) -> JSON:
        body = await _body(request)
        known = {"clear", "fail_next", "rates", "latency", "hang_next", "limits"}
        for key in body:
            if key not in known:
                raise _invalid(key, f"unknown fault option; use one of {sorted(known)}")
        try:
            self._apply_faults(body)
        except ValueError as exc:
            raise _invalid("body", str(exc)) from None
        return {"faults": self.sim.faults.describe()}

    def _apply_faults(self, body: JSON) -> None:
        sim = self.sim
        if body.get("clear"):
            sim.faults.reset()
            sim.disable_limits()
        if "fail_next" in body:
            spec = _section(body, "fail_next")
            error_code = _int(spec, "error_code", required=True) or 0
            if not 400 <= error_code <= 599:
                raise _invalid("error_code", "must be an HTTP error status (400-599)")
            sim.fail_next(
                _str(spec, "method", required=True) or "",
                error_code=error_code,
                description=_str(spec, "description"),
                retry_after=_int(spec, "retry_after"),
                count=_int(spec, "count") or 1,
                chat_id=_int(spec, "chat_id"),
            )
        if "rates" in body:
            spec = _section(body, "rates")
            sim.set_fault_rates(
                rate_429=_float(spec, "rate_429", 0.0),
                rate_5xx=_float(spec, "rate_5xx", 0.0),
                retry_after=_int(spec, "retry_after") or 1,
                seed=_int(spec, "seed"),
            )
        if "latency" in body:
            spec = _section(body, "latency")
            sim.set_latency(
                _float(spec, "seconds", 0.0), _str(spec, "method"), _float(spec, "jitter", 0.0)
            )
        if "hang_next" in body:
            spec = _section(body, "hang_next")
            sim.hang_next(_str(spec, "method", required=True) or "", _int(spec, "count") or 1)
        if "limits" in body:
            if body["limits"] is None:
                sim.disable_limits()
            else:
                spec = _section(body, "limits")
                sim.enforce_limits(
                    _int(spec, "global_per_second") if "global_per_second" in spec else 30,
                    _int(spec, "per_chat_per_second") if "per_chat_per_second" in spec else 1,
                    _int(spec, "per_group_per_minute") if "per_group_per_minute" in spec else 20,
                )

    async def reset(self, request: web.Request) -> JSON:
        self.sim.reset()
        return {}

    async def reset_counters(self, request: web.Request) -> JSON:
        self.sim.reset_counters()
        return {}

    async def outage(self, request: web.Request) -> JSON:
        """``{"mode": "down" | "hang" | "refuse" | null, "seconds": N}`` starts or ends one."""
        body = await _body(request)
        if "mode" not in body:
            raise _invalid("mode", "is required (null ends the outage)")
        mode = body["mode"]
        if mode is not None and mode not in OUTAGE_MODES:
            raise _invalid("mode", f"must be one of {', '.join(OUTAGE_MODES)} or null")
        seconds = _float(body, "seconds", 0.0) if body.get("seconds") is not None else None
        if seconds is not None and (mode is None or seconds <= 0):
            raise _invalid("seconds", "must be positive, and only given with a mode")
        await self.sim.set_outage(mode, seconds=seconds)
        return {"outage": self.sim.outage.describe()}

    async def age_message(self, request: web.Request) -> JSON:
        chat_id = _path_int(request, "chat_id")
        message_id = _path_int(request, "message_id")
        seconds = _float(await _body(request), "seconds", 0.0)
        self.sim.age_message(chat_id, message_id, seconds)
        return {}


def _section(body: JSON, name: str) -> dict[str, Any]:
    value = body[name]
    if not isinstance(value, dict):
        raise _invalid(name, "must be a JSON object")
    return value
