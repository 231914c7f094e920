"""Bearer API keys: ``Authorization: Bearer hk_...`` on every route that is not public.

Keys are checked by :func:`persistence.api_keys.authenticate` (SHA-256 hash, constant-time
comparison, ``last_used_at`` recorded). A verified key is then trusted for
``ApiContext.auth_cache_seconds`` so a busy client costs no database round trip per request; a
revoked key therefore stops working within that many seconds (0 disables the cache).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from aiohttp import web

from admin_api.context import API_CONTEXT
from admin_api.errors import ApiError, Handler
from admin_api.routing import USER, operation_of
from persistence.api_keys import authenticate
from persistence.models import User

_MAX_CACHED_KEYS = 10_000


@dataclass
class KeyCache:
    ttl: float
    entries: dict[str, tuple[float, User]] = field(default_factory=dict)

    def get(self, digest: str) -> User | None:
        entry = self.entries.get(digest)
        if entry is None:
            return None
        expires, user = entry
        if expires < time.monotonic():
            del self.entries[digest]
            return None
        return user

    def put(self, digest: str, user: User) -> None:
        if self.ttl <= 0:
            return
        if len(self.entries) >= _MAX_CACHED_KEYS:
            self.entries.clear()
        self.entries[digest] = (time.monotonic() + self.ttl, user)


KEY_CACHE = web.AppKey("key_cache", KeyCache)


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="herald"'}
    )


async def _user_for(request: web.Request, presented: str) -> User | None:
    cache = request.app[KEY_CACHE]
    digest = hashlib.sha256(presented.encode()).hexdigest()
    user = cache.get(digest)
    if user is not None:
        return user
    async with request.app[API_CONTEXT].sessions.begin() as session:
        user = await authenticate(session, presented)
        if user is not None:
            session.expunge(user)
    if user is not None:
        cache.put(digest, user)
    return user


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = operation_of(request)
    if operation is None or operation.public:
        return await handler(request)  # unknown routes answer 404/405 by themselves
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    user = await _user_for(request, presented.strip())
    if user is None:
        raise _unauthorized("the API key is unknown or revoked")
    if operation.superuser and not user.is_superuser:
        raise ApiError(403, "forbidden", "only a superuser may do this")
    request[USER] = user
    return await handler(request)
