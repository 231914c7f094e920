"""A local Skebby REST API v1.0 simulator, for tests, benchmarks and sandbox mode.

It serves ``/API/v1.0/REST/`` like ``https://api.skebby.it`` does: session-key and token login,
``POST sms`` / ``POST paramsms`` with Skebby's validation and fragment-based credit accounting,
per-recipient order states and history (:mod:`sandbox.skebby_simulator_orders`), user status,
received SMS and the blacklist with Skebby's Stop SMS service
(:mod:`sandbox.skebby_simulator_inbound`), and the account routes (contacts, groups, TPOA
aliases, subaccounts, 2FA, landing pages; :mod:`sandbox.skebby_simulator_account`). The GSM-7
tables and fragment counter in ``skebby_simulator_orders`` are an independent oracle for
``channels/sms_text.py``.

Tests drive it from the outside: inject faults (``fail_next``, ``set_fault_rate``,
``set_latency``, ``hang_next``, ``drop_answer_next``), move deliveries along (``advance``,
``set_state``, ``set_outcome``), make phones answer (``receive_sms``, ``reply_stop``), expire
sessions without sleeping (``expire_sessions`` or an injected ``clock``) and inspect ``orders``,
``requests`` and ``logins``. Another process does the same through the control API under
``/_sim/`` (:mod:`sandbox.skebby_simulator_control`), which needs no Skebby login.

Usage::

    async with SkebbySimulator(credits=1000) as sim:
        gateway = SkebbyGateway(sim.base_url, "sandbox", "sandbox")
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from sandbox.skebby_http import (
    API_PREFIX,
    bad_request,
    error_response,
    ok_json,
    parse_bool,
    read_json,
)
from sandbox.skebby_simulator_account import AccountState, SkebbyAccountRoutes
from sandbox.skebby_simulator_control import CONTROL_PREFIX, control_routes
from sandbox.skebby_simulator_inbound import InboundState, SkebbyInboundRoutes
from sandbox.skebby_simulator_orders import (
    DEFAULT_PROGRESSION,
    MESSAGE_TYPES,
    SimOrder,
    SkebbyOrderRoutes,
)
from sandbox.skebby_simulator_orders import ORDER_STATES as ORDER_STATES
from sandbox.skebby_simulator_orders import count_fragments as count_fragments
from sandbox.skebby_simulator_orders import is_gsm7 as is_gsm7

logger = logging.getLogger(__name__)


@dataclass
class _Fault:
    kind: Literal["fail", "hang", "drop"]
    prefix: str
    method: str | None
    remaining: int
    status: int = 500
    body: str = ""
    drop_mode: Literal["disconnect", "502"] = "disconnect"

    def matches(self, method: str, rel_path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.remaining > 0 and rel_path.startswith(self.prefix)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SkebbySimulator(SkebbyOrderRoutes, SkebbyInboundRoutes, SkebbyAccountRoutes):
    """An honest, in-process fake of the Skebby REST API (one account)."""

    def __init__(
        self,
        username: str = "sandbox",
        password: str = "sandbox",  # noqa: S107 - the documented sandbox account
        *,
        credits: int | Mapping[str, int] = 1_000_000,
        money: float = 1000.0,
        session_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        progression: Mapping[str, str] | None = None,
        auto_advance: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.session_ttl = session_ttl
        self.clock = clock
        self.progression = dict(progression or DEFAULT_PROGRESSION)
        self.auto_advance = auto_advance
        if isinstance(credits, int):
            credits = dict.fromkeys(MESSAGE_TYPES, credits)
        self._initial_credits = {t: int(credits.get(t, 0)) for t in MESSAGE_TYPES}
        self._initial_money = money
        self.user_key = f"SBX{secrets.token_hex(6).upper()}"
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._host = "127.0.0.1"
        self._released = asyncio.Event()
        self._init_state()

    def _init_state(self) -> None:
        self.credits: dict[str, int] = dict(self._initial_credits)
        self.money = self._initial_money
        self.sessions: dict[str, float] = {}
        self.tokens: set[str] = set()
        self.orders: dict[str, SimOrder] = {}
        self.outcomes: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.logins = 0
        self.account = AccountState()
        self.inbound = InboundState()
        self.add_landing("Sandbox landing", description="A published landing page")
        self._faults: list[_Fault] = []
        self._fault_rate = 0.0
        self._fault_prefix = ""
        self._rng = random.Random()
        self._latency = 0.0
        self._internal_ids = 0

    def reset(self) -> None:
        """Forget orders, sessions, counters, faults and account data; restore the credits."""
        self._init_state()

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        app.add_routes(
            self._user_routes()
            + self.order_routes()
            + self.inbound_routes()
            + self.account_routes()
            + control_routes(self)
        )
        self._released = asyncio.Event()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self._host = host
        self._port = runner.addresses[0][1]
        logger.info("Skebby simulator listening on %s", self.base_url)

    async def stop(self) -> None:
        self._released.set()  # let hung requests finish
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SkebbySimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the Skebby simulator is not started")
        return f"http://{self._host}:{self._port}{API_PREFIX}"

    @property
    def control_url(self) -> str:
        """The control API (``/_sim``): inject received SMS, STOP replies, advance orders."""
        if self._port is None:
            raise RuntimeError("the Skebby simulator is not started")
        return f"http://{self._host}:{self._port}{CONTROL_PREFIX.rstrip('/')}"

    # ----------------------------------------------------------------- fault injection

    def fail_next(
        self,
        path_prefix: str,
        status: int = 500,
        body: str = "Internal Server Error",
        count: int = 1,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose path (relative to the REST root, e.g.
        ``"sms"``, ``"login"``) starts with ``path_prefix`` with ``status`` and ``body``."""
        self._faults.append(_Fault("fail", path_prefix, method, count, status, body))

    def hang_next(self, path_prefix: str, count: int = 1, *, method: str | None = None) -> None:
        """Never answer the next matching requests (until :meth:`stop`): client timeouts."""
        self._faults.append(_Fault("hang", path_prefix, method, count))

    def drop_answer_next(
        self,
        path_prefix: str = "sms",
        count: int = 1,
        *,
        method: str | None = "POST",
        mode: Literal["disconnect", "502"] = "disconnect",
    ) -> None:
        """Process the next matching request fully (an SMS order IS recorded) but lose the
        answer: the connection is dropped, or a proxy-style 502 is returned."""
        self._faults.append(_Fault("drop", path_prefix, method, count, drop_mode=mode))

    def set_fault_rate(
        self, rate_5xx: float, seed: int | None = None, path_prefix: str = ""
    ) -> None:
        """Answer a random share ``rate_5xx`` of requests (matching ``path_prefix``) with 503."""
        self._fault_rate = rate_5xx
        self._fault_prefix = path_prefix
        self._rng = random.Random(seed)

    def set_latency(self, seconds: float) -> None:
        self._latency = seconds

    def clear_faults(self) -> None:
        self._faults.clear()
        self._fault_rate = 0.0
        self._latency = 0.0

    def _take_fault(self, kinds: set[str], method: str, rel: str) -> _Fault | None:
        for fault in self._faults:
            if fault.kind in kinds and fault.matches(method, rel):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ----------------------------------------------------------------- middleware & auth

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)  # the test's side: no login, no faults, not counted
        rel = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else ""
        route = request.match_info.route.resource
        name = route.canonical[len(API_PREFIX) :] if route is not None else f"?{request.path}"
        self.requests[f"{request.method} {name}"] += 1
        if self._latency and await self._stopped_within(self._latency):
            return web.Response(status=503, text="simulator stopped")
        fault = self._take_fault({"fail", "hang"}, request.method, rel)
        if fault is not None and fault.kind == "hang":
            await self._released.wait()
            return web.Response(status=503, text="simulator stopped")
        if fault is not None:
            return web.Response(status=fault.status, text=fault.body)
        faulty = self._fault_rate and rel.startswith(self._fault_prefix)
        if faulty and self._rng.random() < self._fault_rate:
            return web.Response(status=503, text="Service Unavailable")
        if rel not in {"login", "token", "checksession"}:
            self._authenticate(request)
        response = await handler(request)
        if response.status < 400:
            drop = self._take_fault({"drop"}, request.method, rel)
            if drop is not None and drop.drop_mode == "502":
                return web.Response(status=502, text="Bad Gateway")
            if drop is not None and request.transport is not None:
                request.transport.abort()
        return response

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the simulator stops first (then True)."""
        try:
            await asyncio.wait_for(self._released.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _session_valid(self, request: web.Request, *, renew: bool) -> bool:
        if request.headers.get("user_key") != self.user_key:
            return False
        token = request.headers.get("Access_token")
        if token is not None:
            return token in self.tokens
        session = request.headers.get("Session_key")
        last_used = self.sessions.get(session or "")
        if session is None or last_used is None:
            return False
        now = self.clock()
        if now - last_used > self.session_ttl:
            del self.sessions[session]
            return False
        if renew:
            self.sessions[session] = now
        return True

    def _authenticate(self, request: web.Request) -> None:
        if not self._session_valid(request, renew=True):
            raise error_response(401, "User_key, Token or Session_key are invalid or not provided")

    def expire_sessions(self) -> None:
        """Expire every session key now, as if they had been idle longer than ``session_ttl``."""
        self.sessions.clear()

    def _credentials(self, request: web.Request) -> tuple[str | None, str | None]:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                bad_request("malformed Authorization header")
            username, _, password = decoded.partition(":")
            return username, password
        return request.query.get("username"), request.query.get("password")

    def _check_login(self, request: web.Request) -> None:
        username, password = self._credentials(request)
        if not username or password is None:
            bad_request("username and password are required")
        ok_user = secrets.compare_digest(username.encode(), self.username.encode())
        ok_password = secrets.compare_digest(password.encode(), self.password.encode())
        if not (ok_user and ok_password):
            raise error_response(401, "Credentials are incorrect")
        self.logins += 1

    # ----------------------------------------------------------------- routes

    def _user_routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        return [
            web.get(p + "login", self._login),
            web.get(p + "token", self._token),
            web.get(p + "status", self._status),
            web.get(p + "dashboard", self._dashboard),
            web.get(p + "checksession", self._checksession),
            web.post(p + "pwdreset", self._pwdreset),
            web.post(p + "resetpwd", self._pwdreset),
        ]

    async def _login(self, request: web.Request) -> web.StreamResponse:
        self._check_login(request)
        session = secrets.token_hex(16)
        self.sessions[session] = self.clock()
        return web.Response(text=f"{self.user_key};{session}")

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self._check_login(request)
        token = secrets.token_hex(20)
        self.tokens.add(token)
        return web.Response(text=f"{self.user_key};{token}")

    # ----------------------------------------------------------------- user

    async def _status(self, request: web.Request) -> web.StreamResponse:
        get_money = parse_bool(request.query.get("getMoney"), False, "getMoney")
        return ok_json(
            {
                "money": self.money if get_money else None,
                "sms": [{"type": t, "quantity": self.credits[t]} for t in MESSAGE_TYPES],
                "email": {
                    "bandwidth": 2000.0,
                    "purchased": "2024-01-01",
                    "billing": "EMAILPERHOUR",
                    "expiry": "2099-12-31",
                },
            }
        )

    async def _dashboard(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"http://{self._host}:{self._port}/sandbox/dashboard")

    async def _checksession(self, request: web.Request) -> web.StreamResponse:
        valid = self._session_valid(request, renew=False)
        return web.Response(text="true" if valid else "false")

    async def _pwdreset(self, request: web.Request) -> web.StreamResponse:
        password = request.query.get("password")
        if password is None and request.can_read_body:
            password = (await read_json(request)).get("password")
        if not isinstance(password, str) or len(password) < 8:
            bad_request("password must be at least 8 characters")
        self.password = password
        return web.Response(text="true")
