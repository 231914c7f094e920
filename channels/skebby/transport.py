"""The authenticated HTTP exchange with Skebby, shared by every area of the API.

One login is shared by every call (lazy, guarded by a lock so concurrent first calls log in
once). A 401 on stale credentials triggers exactly one re-login and one retry; a 401 right after
a fresh login means Skebby refuses the credentials and raises :class:`SkebbyAuthenticationError`.
Every call has a timeout. Credentials travel only in the login request's Basic ``Authorization``
header (and, as the API demands, in the query of ``pwdreset``); they are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict
from pydantic import SecretStr

from channels.skebby.errors import (
    SkebbyAuthenticationError,
    SkebbyBadRequestError,
    SkebbyConnectionError,
    SkebbyException,
    SkebbyNotFoundError,
    SkebbyServerError,
    SkebbyTimeoutError,
)
from channels.skebby.models import QueryValue, SkebbyReply
from channels.skebby.wire import query_params

logger = logging.getLogger(__name__)

BODY_LIMIT = 500  # characters of an error body kept in exception messages


@dataclass(frozen=True, slots=True)
class _Keys:
    user_key: str
    secret: str
    generation: int


def error_for(method: str, path: str, reply: SkebbyReply) -> SkebbyException:
    """The exception a non-accepted answer maps to (by HTTP status)."""
    body = reply.text[:BODY_LIMIT]
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


class SkebbyTransport:
    """Logs in and makes authenticated calls; ``logins`` counts successful logins."""

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
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.username = username
        self.auth = str(auth)
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        self._lock = asyncio.Lock()
        self._keys: _Keys | None = None
        self._generation = 0
        self.logins = 0

    def set_password(self, password: SecretStr) -> None:
        """Later logins use ``password`` (after Skebby accepted a password change)."""
        self._password = password

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # ----------------------------------------------------------------- one exchange

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
                self.base_url + path,
                params=query_params(params),
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

    # ----------------------------------------------------------------- authentication

    async def login(self) -> None:
        """Log in now (``GET login`` or ``GET token``), replacing any current session."""
        async with self._lock:
            await self._login_locked()

    async def _login_locked(self) -> _Keys:
        path = "login" if self.auth == "session" else "token"
        pair = f"{self.username}:{self._password.get_secret_value()}".encode()
        basic = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        reply = await self._send("GET", path, headers=basic, sensitive=True)
        if reply.status in {401, 403, 404}:
            self._keys = None
            raise SkebbyAuthenticationError(
                f"Skebby refused the credentials of user {self.username!r} "
                f"(HTTP {reply.status} on {path}); check SKEBBY_USERNAME and SKEBBY_PASSWORD",
                status=reply.status,
                body=reply.text[:BODY_LIMIT],
            )
        if reply.status != 200:
            raise error_for("GET", path, reply)
        user_key, separator, secret = reply.text.strip().partition(";")
        if not separator or not user_key or not secret:
            raise SkebbyException(f"unexpected Skebby {path} answer", status=reply.status)
        self._generation += 1
        self.logins += 1
        self._keys = _Keys(user_key, secret, self._generation)
        logger.info("Skebby %s login succeeded", self.auth)
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
            logger.info("Skebby refused the %s key; logging in again", self.auth)
            return await self._login_locked()

    def _headers(self, keys: _Keys) -> dict[str, str]:
        name = "Session_key" if self.auth == "session" else "Access_token"
        return {"user_key": keys.user_key, name: keys.secret}

    # ----------------------------------------------------------------- authenticated calls

    async def call(
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

        async def attempt(keys: _Keys) -> SkebbyReply:
            headers = self._headers(keys)
            return await self._send(
                method, path, params=params, json=json, headers=headers, sensitive=sensitive
            )

        keys = await self._current_keys()
        reply = await attempt(keys)
        if reply.status == 401 and keys.generation == start_generation:
            reply = await attempt(await self._renew(keys))
        if reply.status == 401:
            raise SkebbyAuthenticationError(
                f"Skebby refused the credentials of user {self.username!r}: {method} {path} "
                "answered 401 right after a fresh login",
                status=401,
                body=reply.text[:BODY_LIMIT],
            )
        if reply.status not in ok:
            raise error_for(method, path, reply)
        return reply

    async def call_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        ok: Collection[int] = (200,),
    ) -> Any:
        """:meth:`call`, then the body parsed as JSON."""
        reply = await self.call(method, path, params=params, json=json, ok=ok)
        try:
            return jsonlib.loads(reply.text)
        except ValueError:
            raise SkebbyException(
                f"Skebby {method} {path} answered non-JSON", status=reply.status, body=reply.text
            ) from None


class SkebbyApi:
    """The base of every area of the API: calls go through the shared :class:`SkebbyTransport`."""

    def __init__(self, transport: SkebbyTransport) -> None:
        self.transport = transport
