"""Async client for the Skebby REST API v1.0 (``https://api.skebby.it/API/v1.0/REST/``).

One login is shared by every call (lazy, guarded by a lock so concurrent first calls log in
once). A 401 on stale credentials triggers exactly one re-login and one retry; a 401 right after
a fresh login means Skebby refuses the credentials and raises :class:`SkebbyAuthenticationError`.
Every call has a timeout. Errors carry ``transient`` so the dispatcher knows whether to retry.

Credentials travel only in the login request's Basic ``Authorization`` header (and, as the API
demands, in the query of ``pwdreset``); they are never logged.

Sending carries our own ``order_id`` (see :func:`make_order_id`), so after a crash or a lost
answer :meth:`SkebbyGateway.probe_order` tells whether Skebby accepted a batch before resending.
Account APIs (contacts, groups, blacklist, received SMS, aliases, subaccounts, 2FA, landing pages)
come from :class:`channels.skebby_account.SkebbyAccountMixin`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json as jsonlib
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict
from pydantic import SecretStr

from channels.skebby_account import (
    MoType,
    QueryValue,
    SkebbyAccountMixin,
    SkebbyReply,
    TwoFactorResult,
    _window,
    skebby_date,
)

__all__ = [
    "Encoding",
    "MessageType",
    "MoType",
    "OrderState",
    "OrderStatus",
    "RecipientState",
    "SendResult",
    "SkebbyAuthenticationError",
    "SkebbyBadRequestError",
    "SkebbyBoolean",
    "SkebbyConnectionError",
    "SkebbyException",
    "SkebbyGateway",
    "SkebbyNotFoundError",
    "SkebbyServerError",
    "SkebbyTimeoutError",
    "TwoFactorResult",
    "UserStatus",
    "is_valid_order_id",
    "make_order_id",
]

logger = logging.getLogger(__name__)

_ORDER_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_BODY_LIMIT = 500


# --------------------------------------------------------------------------- enums


class MessageType(StrEnum):
    GP = "GP"  # Classic+: custom sender, delivery reports
    TI = "TI"  # Classic
    SI = "SI"  # Basic: no custom sender


class Encoding(StrEnum):
    GSM = "gsm"
    UCS2 = "ucs2"


class SkebbyBoolean(StrEnum):
    """Booleans as Skebby's query strings spell them."""

    TRUE = "true"
    FALSE = "false"

    @classmethod
    def of(cls, value: bool) -> SkebbyBoolean:
        return cls.TRUE if value else cls.FALSE


class OrderState(StrEnum):
    WAITING = "WAITING"
    WAIT4DLVR = "WAIT4DLVR"
    SENT = "SENT"
    DLVRD = "DLVRD"
    TOOM4USER = "TOOM4USER"
    TOOM4NUM = "TOOM4NUM"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    UNKNRCPT = "UNKNRCPT"
    UNKNPFX = "UNKNPFX"
    DEMO = "DEMO"
    SCHEDULED = "SCHEDULED"
    INVALIDDST = "INVALIDDST"
    BLACKLISTED = "BLACKLISTED"
    KO = "KO"
    INVALIDCONTENTS = "INVALIDCONTENTS"

    @property
    def is_pending(self) -> bool:
        """Skebby has not reached a final verdict yet."""
        return self in _PENDING

    @property
    def is_delivered(self) -> bool:
        return self is OrderState.DLVRD

    @property
    def is_failed(self) -> bool:
        """Final and not delivered (``DEMO`` counts: a demo send reaches no handset)."""
        return not self.is_pending and not self.is_delivered


_PENDING = frozenset(
    {OrderState.WAITING, OrderState.WAIT4DLVR, OrderState.SENT, OrderState.SCHEDULED}
)


# --------------------------------------------------------------------------- errors


class SkebbyException(Exception):
    """A Skebby call failed. ``status`` is the HTTP status (None when no answer came)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed (5xx, 429, timeouts, connection errors)."""
        return self.status is not None and (self.status >= 500 or self.status == 429)


class SkebbyAuthenticationError(SkebbyException):
    """Skebby refused the credentials or the session (401): permanent until reconfigured."""


class SkebbyBadRequestError(SkebbyException):
    """Skebby rejected the request (400); ``details`` holds the parsed body when it is JSON."""

    @property
    def details(self) -> Any:
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return self.body


class SkebbyNotFoundError(SkebbyException):
    """The addressed object (order, contact, ...) does not exist (404)."""


class SkebbyServerError(SkebbyException):
    """Skebby answered 5xx."""


class SkebbyTimeoutError(SkebbyException):
    @property
    def transient(self) -> bool:
        return True


class SkebbyConnectionError(SkebbyException):
    """No usable answer: refused connection, dropped connection, DNS failure..."""

    @property
    def transient(self) -> bool:
        return True


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class SendResult:
    order_id: str
    total_sent: int  # credits used (SMS fragments x recipients) when return_credits is True
    remaining_credits: int | None
    internal_order_id: str | None


@dataclass(frozen=True, slots=True)
class RecipientState:
    destination: str
    status: OrderState
    delivery_date: datetime | None  # UTC


@dataclass(frozen=True, slots=True)
class OrderStatus:
    order_id: str
    recipients: tuple[RecipientState, ...]

    def state_of(self, destination: str) -> OrderState | None:
        for recipient in self.recipients:
            if recipient.destination == destination:
                return recipient.status
        return None

    @property
    def is_final(self) -> bool:
        return all(not r.status.is_pending for r in self.recipients)


@dataclass(frozen=True, slots=True)
class UserStatus:
    sms: dict[str, int]  # message type -> SMS that can still be sent
    money: float | None
    email: dict[str, Any] | None

    def credits(self, message_type: MessageType | str) -> int:
        return self.sms.get(str(message_type), 0)


@dataclass(frozen=True, slots=True)
class _Keys:
    user_key: str
    secret: str
    generation: int


# --------------------------------------------------------------------------- helpers


def is_valid_order_id(order_id: str) -> bool:
    return _ORDER_ID_RE.fullmatch(order_id) is not None


def make_order_id(seed: str, prefix: str = "hrd-") -> str:
    """A valid Skebby order id (≤32 chars of [A-Za-z0-9_.-]) derived deterministically from
    ``seed``, so a crashed batch can be looked up again by the same id."""
    if len(prefix) > 12 or (prefix and not is_valid_order_id(prefix)):
        raise ValueError("prefix must be at most 12 characters of [A-Za-z0-9_.-]")
    return (prefix + hashlib.sha256(seed.encode()).hexdigest())[:32]


def _parse_delivery_date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _query(params: Mapping[str, QueryValue] | None) -> dict[str, str] | None:
    if params is None:
        return None
    return {
        key: SkebbyBoolean.of(value).value if isinstance(value, bool) else str(value)
        for key, value in params.items()
        if value is not None
    }


# --------------------------------------------------------------------------- the client


class SkebbyGateway(SkebbyAccountMixin):
    """Async Skebby client. Use as ``async with SkebbyGateway(...) as gateway:``."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr | str,
        *,
        auth: Literal["session", "token"] | str = "session",
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if auth not in {"session", "token"}:
            raise ValueError("auth must be 'session' or 'token'")
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self._auth = str(auth)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._lock = asyncio.Lock()
        self._keys: _Keys | None = None
        self._generation = 0
        self.logins = 0

    def __repr__(self) -> str:
        return f"SkebbyGateway({self._base_url!r}, {self._username!r}, auth={self._auth!r})"

    async def __aenter__(self) -> SkebbyGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # ----------------------------------------------------------------- transport

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise SkebbyConnectionError("the shared aiohttp session is closed")
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        sensitive: bool = False,
    ) -> SkebbyReply:
        """One HTTP exchange; never logs the query string or bodies."""
        try:
            async with self._http().request(
                method,
                self._base_url + path,
                params=_query(params),
                json=json,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                text = await response.text()
                reply = SkebbyReply(response.status, text, CIMultiDict(response.headers))
        except TimeoutError:
            seconds = self._timeout.total
            raise SkebbyTimeoutError(f"Skebby {method} {path} timed out after {seconds}s") from None
        except aiohttp.ClientError as exc:
            detail = type(exc).__name__ if sensitive else f"{type(exc).__name__}: {exc}"
            error = SkebbyConnectionError(f"Skebby {method} {path} failed: {detail}")
            if sensitive:
                raise error from None
            raise error from exc
        logger.debug("Skebby %s %s -> %s", method, path, reply.status)
        return reply

    @staticmethod
    def _error(method: str, path: str, reply: SkebbyReply) -> SkebbyException:
        body = reply.text[:_BODY_LIMIT]
        message = f"Skebby {method} {path} answered HTTP {reply.status}: {body}"
        cls: type[SkebbyException] = SkebbyException
        if reply.status == 400:
            cls = SkebbyBadRequestError
        elif reply.status == 401:
            cls = SkebbyAuthenticationError
        elif reply.status == 404:
            cls = SkebbyNotFoundError
        elif reply.status >= 500:
            cls = SkebbyServerError
        return cls(message, status=reply.status, body=reply.text)

    # ----------------------------------------------------------------- authentication

    async def login(self) -> None:
        """Log in now (``GET login`` or ``GET token``), replacing any current session."""
        async with self._lock:
            await self._login_locked()

    async def _login_locked(self) -> _Keys:
        path = "login" if self._auth == "session" else "token"
        pair = f"{self._username}:{self._password.get_secret_value()}".encode()
        basic = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        reply = await self._send("GET", path, headers=basic, sensitive=True)
        if reply.status in {401, 403, 404}:
            self._keys = None
            raise SkebbyAuthenticationError(
                f"Skebby refused the credentials of user {self._username!r} "
                f"(HTTP {reply.status} on {path}); check SKEBBY_USERNAME and SKEBBY_PASSWORD",
                status=reply.status,
                body=reply.text[:_BODY_LIMIT],
            )
        if reply.status != 200:
            raise self._error("GET", path, reply)
        user_key, separator, secret = reply.text.strip().partition(";")
        if not separator or not user_key or not secret:
            raise SkebbyException(f"unexpected Skebby {path} answer", status=reply.status)
        self._generation += 1
        self.logins += 1
        self._keys = _Keys(user_key, secret, self._generation)
        logger.info("Skebby %s login succeeded", self._auth)
        return self._keys

    async def _current_keys(self) -> _Keys:
        keys = self._keys
        if keys is not None:
            return keys
        async with self._lock:
            if self._keys is not None:
                return self._keys
            return await self._login_locked()

    async def _renew(self, stale: _Keys) -> _Keys:
        async with self._lock:
            if self._keys is not None and self._keys is not stale:
                return self._keys  # someone else already logged in again
            logger.info("Skebby refused the %s key; logging in again", self._auth)
            return await self._login_locked()

    def _headers(self, keys: _Keys) -> dict[str, str]:
        name = "Session_key" if self._auth == "session" else "Access_token"
        return {"user_key": keys.user_key, name: keys.secret}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        ok: Collection[int] = (200,),
        sensitive: bool = False,
    ) -> SkebbyReply:
        """An authenticated call: renews stale keys once, maps failures to exceptions."""
        start_generation = self._generation
        keys = await self._current_keys()
        reply = await self._send(
            method, path, params=params, json=json, headers=self._headers(keys), sensitive=sensitive
        )
        if reply.status == 401 and keys.generation == start_generation:
            keys = await self._renew(keys)
            reply = await self._send(
                method,
                path,
                params=params,
                json=json,
                headers=self._headers(keys),
                sensitive=sensitive,
            )
        if reply.status == 401:
            raise SkebbyAuthenticationError(
                f"Skebby refused the credentials of user {self._username!r}: {method} {path} "
                "answered 401 right after a fresh login",
                status=401,
                body=reply.text[:_BODY_LIMIT],
            )
        if reply.status not in ok:
            raise self._error(method, path, reply)
        return reply

    async def _call_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        ok: Collection[int] = (200,),
    ) -> Any:
        reply = await self._call(method, path, params=params, json=json, ok=ok)
        try:
            return jsonlib.loads(reply.text)
        except ValueError:
            raise SkebbyException(
                f"Skebby {method} {path} answered non-JSON", status=reply.status, body=reply.text
            ) from None

    # ----------------------------------------------------------------- sending

    @staticmethod
    def _send_options(
        *,
        message_type: MessageType | str,
        message: str,
        sender: str | None,
        order_id: str | None,
        scheduled_delivery_time: datetime | str | None,
        scheduled_delivery_timezone: str | None,
        encoding: Encoding | str | None,
        max_fragments: int | None,
        truncate: bool | None,
        return_credits: bool,
        allow_invalid_recipients: bool | None,
        campaign_name: str | None,
        richsms_url: str | None,
        id_landing: int | None,
    ) -> dict[str, Any]:
        if order_id is not None and not is_valid_order_id(order_id):
            raise ValueError("order_id must be at most 32 characters of [A-Za-z0-9_.-]")
        body: dict[str, Any] = {
            "message_type": str(MessageType(message_type)),
            "message": message,
            "returnCredits": return_credits,
            "returnRemaining": True,
        }
        if scheduled_delivery_time is not None:
            body["scheduled_delivery_time"] = skebby_date(scheduled_delivery_time)
            aware = isinstance(scheduled_delivery_time, datetime) and bool(
                scheduled_delivery_time.tzinfo
            )
            if scheduled_delivery_timezone is not None or aware:
                body["scheduled_delivery_timezone"] = scheduled_delivery_timezone or "UTC"
        optional = {
            "sender": sender,
            "order_id": order_id,
            "encoding": str(Encoding(encoding)) if encoding is not None else None,
            "max_fragments": max_fragments,
            "truncate": truncate,
            "allowInvalidRecipients": allow_invalid_recipients,
            "campaign_name": campaign_name,
            "richsms_url": richsms_url,
            "id_landing": id_landing,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return body

    async def _post_send(self, path: str, body: dict[str, Any]) -> SendResult:
        result = await self._call_json("POST", path, json=body, ok=(200, 201))
        if result.get("result") != "OK":
            raise SkebbyException(f"Skebby {path} did not answer OK", body=jsonlib.dumps(result))
        remaining = result.get("remaining_credits")
        internal = result.get("internal_order_id")
        return SendResult(
            order_id=str(result["order_id"]),
            total_sent=int(result.get("total_sent", 0)),
            remaining_credits=int(remaining) if remaining is not None else None,
            internal_order_id=str(internal) if internal is not None else None,
        )

    async def send_sms(
        self,
        message: str,
        recipients: Iterable[str],
        *,
        message_type: MessageType | str,
        sender: str | None = None,
        order_id: str | None = None,
        scheduled_delivery_time: datetime | str | None = None,
        scheduled_delivery_timezone: str | None = None,
        encoding: Encoding | str | None = None,
        max_fragments: int | None = None,
        truncate: bool | None = None,
        return_credits: bool = True,
        allow_invalid_recipients: bool | None = None,
        campaign_name: str | None = None,
        richsms_url: str | None = None,
        id_landing: int | None = None,
    ) -> SendResult:
        """``POST sms``: one message to E.164 ``recipients``. With ``return_credits`` the
        result's ``total_sent`` counts billed credits (fragments x recipients)."""
        body = self._send_options(
            message_type=message_type,
            message=message,
            sender=sender,
            order_id=order_id,
            scheduled_delivery_time=scheduled_delivery_time,
            scheduled_delivery_timezone=scheduled_delivery_timezone,
            encoding=encoding,
            max_fragments=max_fragments,
            truncate=truncate,
            return_credits=return_credits,
            allow_invalid_recipients=allow_invalid_recipients,
            campaign_name=campaign_name,
            richsms_url=richsms_url,
            id_landing=id_landing,
        )
        body["recipient"] = list(recipients)
        if not body["recipient"]:
            raise ValueError("recipients must not be empty")
        return await self._post_send("sms", body)

    async def send_parametric_sms(
        self,
        message: str,
        recipients: Mapping[str, Mapping[str, str]],
        *,
        message_type: MessageType | str,
        sender: str | None = None,
        order_id: str | None = None,
        scheduled_delivery_time: datetime | str | None = None,
        scheduled_delivery_timezone: str | None = None,
        encoding: Encoding | str | None = None,
        max_fragments: int | None = None,
        truncate: bool | None = None,
        return_credits: bool = True,
        allow_invalid_recipients: bool | None = None,
        campaign_name: str | None = None,
        richsms_url: str | None = None,
        id_landing: int | None = None,
    ) -> SendResult:
        """``POST paramsms``: ``message`` has ``${Name}`` placeholders; ``recipients`` maps each
        E.164 number to its parameter values."""
        body = self._send_options(
            message_type=message_type,
            message=message,
            sender=sender,
            order_id=order_id,
            scheduled_delivery_time=scheduled_delivery_time,
            scheduled_delivery_timezone=scheduled_delivery_timezone,
            encoding=encoding,
            max_fragments=max_fragments,
            truncate=truncate,
            return_credits=return_credits,
            allow_invalid_recipients=allow_invalid_recipients,
            campaign_name=campaign_name,
            richsms_url=richsms_url,
            id_landing=id_landing,
        )
        if not recipients:
            raise ValueError("recipients must not be empty")
        body["recipients"] = {
            str(index): {**params, "recipient": number}
            for index, (number, params) in enumerate(recipients.items())
        }
        return await self._post_send("paramsms", body)

    async def get_order_state(self, order_id: str) -> OrderStatus:
        """``GET sms/{order_id}``; raises :class:`SkebbyNotFoundError` for an unknown order."""
        result = await self._call_json("GET", f"sms/{order_id}")
        states: list[RecipientState] = []
        for item in result.get("recipients", []):
            try:
                status = OrderState(item["status"])
            except ValueError:
                raise SkebbyException(
                    f"Skebby reported an unknown order state {item['status']!r}",
                    body=jsonlib.dumps(item),
                ) from None
            date = _parse_delivery_date(item.get("delivery_date"))
            states.append(RecipientState(str(item["destination"]), status, date))
        return OrderStatus(order_id=order_id, recipients=tuple(states))

    async def probe_order(self, order_id: str) -> OrderStatus | None:
        """The order's state, or None when Skebby never accepted it (safe to resend)."""
        try:
            return await self.get_order_state(order_id)
        except SkebbyNotFoundError:
            return None

    async def delete_scheduled(self, order_id: str) -> None:
        """Cancel a scheduled send that has not gone out yet."""
        await self._call("DELETE", f"sms/{order_id}")

    # ----------------------------------------------------------------- history

    async def sms_history(
        self,
        date_from: datetime | str,
        date_to: datetime | str | None = None,
        *,
        timezone: str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        params = {**_window(date_from, date_to, timezone), "pageNumber": page_number}
        params["pageSize"] = page_size
        result: dict[str, Any] = await self._call_json("GET", "smshistory", params=params)
        return result

    async def recipient_history(
        self,
        recipient: str,
        date_from: datetime | str,
        date_to: datetime | str | None = None,
        *,
        timezone: str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        params = {"recipient": recipient, **_window(date_from, date_to, timezone)}
        params.update(pageNumber=page_number, pageSize=page_size)
        result: dict[str, Any] = await self._call_json("GET", "rcptHistory", params=params)
        return result

    async def rich_sms_statistics(self, order_id: str) -> dict[str, Any]:
        params = {"order_id": order_id}
        result: dict[str, Any] = await self._call_json("GET", "smsrich/statistics", params=params)
        return result

    # ----------------------------------------------------------------- user

    async def user_status(self, *, get_money: bool = True) -> UserStatus:
        """Remaining SMS per message type (plus money and email service when available)."""
        params = {"getMoney": get_money, "typeAliases": True}
        result = await self._call_json("GET", "status", params=params)
        sms = {str(item["type"]): int(item["quantity"]) for item in result.get("sms", [])}
        money = result.get("money")
        return UserStatus(
            sms=sms, money=float(money) if money is not None else None, email=result.get("email")
        )

    async def dashboard(self) -> str:
        """The URL of the account's web dashboard."""
        reply = await self._call("GET", "dashboard")
        return reply.text.strip()

    async def check_session(self) -> bool:
        """Whether the current key is still valid (Skebby does not renew it)."""
        reply = await self._call("GET", "checksession")
        return reply.text.strip().lower() == "true"

    async def reset_password(self, new_password: SecretStr | str) -> bool:
        """Change the account password; later logins use the new one."""
        secret = new_password if isinstance(new_password, SecretStr) else SecretStr(new_password)
        params = {"password": secret.get_secret_value()}
        reply = await self._call("POST", "pwdreset", params=params, ok=(200, 201), sensitive=True)
        changed = reply.text.strip().lower() == "true"
        if changed:
            self._password = secret
        return changed
