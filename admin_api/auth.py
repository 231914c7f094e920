"""Bearer API keys: ``Authorization: Bearer hk_...`` on every route that is not public.

Keys are checked by :func:`persistence.api_keys.authenticate` (SHA-256 hash, constant-time
comparison, ``last_used_at`` recorded). A verified key may then be remembered by the context's
:class:`admin_api.key_cache.KeyCache`, which forgets a revoked key at once.
"""

from __future__ import annotations

from aiohttp import web

from admin_api.context import API_CONTEXT
from admin_api.errors import ApiError, Handler
from admin_api.routing import KEY_PREFIX, USER, operation_of
from persistence.api_keys import KEY_PREFIX as KEY_START
from persistence.api_keys import authenticate, display_prefix, hash_key
from persistence.models import User


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="herald"'}
    )


async def _user_for(request: web.Request, presented: str) -> User | None:
    cache = request.app[API_CONTEXT].key_cache
    digest = hash_key(presented)
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
    request[KEY_PREFIX] = KEY_START + display_prefix(presented.strip())
    return await handler(request)
