"""HTTP control API of the Skebby simulator, under ``/_sim/`` (no Skebby login needed).

For another process (a benchmark, a ``herald run`` under test) to play the phones:

- ``POST /_sim/received`` ``{"from": "+39...", "to": SIM, "text": "...", "time": ISO 8601}``
  makes an SMS arrive (``to`` and ``time`` optional);
- ``POST /_sim/stop`` ``{"from": "+39...", "to": SIM}`` makes that person reply STOP;
- ``POST /_sim/advance`` ``{"order_id": "..."}`` moves deliveries one step (all orders without
  an id);
- ``GET /_sim/stats``: orders, credits, blacklist, received SMS, logins and requests.

Errors answer ``{"ok": false, "error": ..., "field": ...}`` with 400, naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from sandbox.skebby_simulator import SkebbySimulator

CONTROL_PREFIX = "/_sim/"


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _Invalid("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise _Invalid("body", "must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise _Invalid(name, "is required")
        return None
    if not isinstance(value, str):
        raise _Invalid(name, "must be a string")
    return value


def _time(body: dict[str, Any]) -> datetime | None:
    raw = _text(body, "time", required=False)
    if raw is None:
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%Y%m%d%H%M%S")):
        try:
            moment = parse(raw)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise _Invalid("time", "must be an ISO 8601 date-time or yyyyMMddHHmmss")


Route = Callable[[web.Request], Awaitable[dict[str, Any]]]


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            result = await route(request)
        except _Invalid as exc:
            body = {"ok": False, "error": str(exc), "field": exc.field}
            return web.json_response(body, status=400)
        except web.HTTPException as exc:  # the simulator's own Skebby-style refusal
            detail = json.loads(exc.text or "{}").get("error", exc.reason)
            return web.json_response({"ok": False, "error": detail}, status=exc.status)
        return web.json_response({"ok": True, **result})

    return handler


def control_routes(sim: SkebbySimulator) -> list[web.RouteDef]:
    async def received(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        message = sim.receive_sms(
            _text(body, "from", required=True) or "",
            _text(body, "text", required=True) or "",
            sim=_text(body, "to", required=False),
            at=_time(body),
        )
        return {"message": {**message.as_json(), "type": message.mo_type}}

    async def stop(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        sender = _text(body, "from", required=True) or ""
        message = sim.reply_stop(sender, sim=_text(body, "to", required=False))
        return {"message": message.as_json(), "blacklisted": sim.is_blacklisted(sender)}

    async def advance(request: web.Request) -> dict[str, Any]:
        order_id = _text(await _body(request), "order_id", required=False)
        if order_id is not None and order_id not in sim.orders:
            raise _Invalid("order_id", f"unknown order {order_id}")
        return {"changed": sim.advance(order_id)}

    async def stats(request: web.Request) -> dict[str, Any]:
        return {
            "stats": {
                "orders": len(sim.orders),
                "credits": dict(sim.credits),
                "blacklist": len(sim.inbound.blacklist),
                "received": len(sim.inbound.messages),
                "logins": sim.logins,
                "requests": dict(sim.requests),
            }
        }

    p = CONTROL_PREFIX
    return [
        web.post(p + "received", _wrap(received)),
        web.post(p + "stop", _wrap(stop)),
        web.post(p + "advance", _wrap(advance)),
        web.get(p + "stats", _wrap(stats)),
    ]
