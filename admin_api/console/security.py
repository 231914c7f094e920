"""The console's guard: encrypted cookie sessions, login, CSRF and the security headers.

- The session is an encrypted cookie (aiohttp-session with Fernet): ``HttpOnly``,
  ``SameSite=Lax``, and ``Secure`` when the request came over https (directly or as a proxy
  reports it in ``X-Forwarded-Proto``: claiming https only makes the claimer's own cookie
  stricter). It ends after ``session_idle_seconds`` without a request, after
  ``session_max_seconds`` in any case, at logout, and when the user's password changes or the
  user is deactivated.
- Every state-changing request (any method but GET/HEAD/OPTIONS) carries the session's CSRF token
  in the form field ``csrf_token`` or the header ``X-CSRF-Token``; without it: 403.
- Every answer carries a strict Content-Security-Policy (only our own scripts and styles, none
  inline), ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff`` and a same-origin
  referrer policy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, get_session, session_middleware
from cryptography.fernet import Fernet, InvalidToken
from yarl import URL

from admin_api.console.i18n import build_i18n
from admin_api.console.pages import (
    CONSOLE,
    CONSOLE_USER,
    CSRF_FIELD,
    CSRF_HEADER,
    I18N,
    PageError,
    api_context,
    redirect,
    render,
)
from admin_api.errors import ApiError
from persistence.common_queries import NotFoundError
from persistence.models import User
from persistence.users import password_fingerprint, user_by_id

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE_NAME = "herald_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Routes reachable without logging in (the login form itself, the language switch, files).
PUBLIC_ROUTES = frozenset(
    {
        "console.login",
        "console.login_post",
        "console.language",
        "console.unsubscribe",
        "console.unsubscribe_post",
    }
)
# Posted by mail clients (RFC 8058 one-click) with no session: the signed token in the path is
# what binds the request to the one person and channel it may change.
CSRF_EXEMPT_ROUTES = frozenset({"console.unsubscribe_post"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_SEEN_RESOLUTION = 30.0  # refresh the idle clock at most this often (each refresh re-encrypts)


def served_over_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


class CookieStorage(AbstractStorage):
    """aiohttp-session's encrypted cookie, with ``Secure`` decided per request."""

    def __init__(self, secret_key: bytes) -> None:
        super().__init__(cookie_name=COOKIE_NAME, httponly=True, samesite="Lax", path="/")
        self._fernet = Fernet(_fernet_key(secret_key))

    async def load_session(self, request: web.Request) -> Session:
        cookie = self.load_cookie(request)
        if cookie is None:
            return Session(None, data=None, new=True, max_age=None)
        try:
            data = self._decoder(self._fernet.decrypt(cookie.encode()).decode())
        except (InvalidToken, ValueError, UnicodeDecodeError):
            # An old key, a tampered or truncated cookie: start afresh.
            return Session(None, data=None, new=True, max_age=None)
        return Session(None, data=data, new=False, max_age=None)

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        params: dict[str, Any] = {
            "path": "/",
            "httponly": True,
            "samesite": "Lax",
            "secure": served_over_https(request),
        }
        if session.empty:
            response.del_cookie(self.cookie_name, path="/")
            return
        data = self._encoder(self._get_session_data(session)).encode()
        response.set_cookie(self.cookie_name, self._fernet.encrypt(data).decode(), **params)


def _fernet_key(secret: bytes) -> bytes:
    """Any length of secret becomes the 32-byte Fernet key, bound to this purpose."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"herald-console\0" + secret).digest())


def security_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _csrf_ok(presented: str, expected: str) -> bool:
    return bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())


async def _presented_csrf(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER, "")
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD, "")
        return value if isinstance(value, str) else ""
    return ""


async def session_user(request: web.Request, session: Session) -> User | None:
    """The logged-in user, if the session is still valid; ends the session when it is not."""
    user_id = session.get("uid")
    if not isinstance(user_id, int):
        return None
    ctx = api_context(request)
    config = ctx.console
    now = ctx.clock().timestamp()
    login_at = float(session.get("login_at", 0))
    seen_at = float(session.get("seen_at", 0))
    expired = now - login_at > config.session_max_seconds
    idle = now - seen_at > config.session_idle_seconds
    record: User | None = None
    if not expired and not idle:
        async with ctx.sessions() as db:
            record = await user_by_id(db, user_id)
    if (
        record is None
        or not record.is_active
        or session.get("pw") != password_fingerprint(record.password_hash)
    ):
        reason = "expired" if expired else "idle" if idle else "password changed or deactivated"
        log.info("console session of user %s ended: %s", user_id, reason)
        end_session(session)
        session["expired"] = True
        return None
    if now - seen_at > _SEEN_RESOLUTION and not _is_stream(request):
        session["seen_at"] = now
    return record


def _is_stream(request: web.Request) -> bool:
    return request.headers.get("Accept", "") == "text/event-stream"


def start_session(session: Session, user: User, language: str | None, now: float) -> None:
    """A fresh session for ``user`` (a new CSRF token too: nothing carries over from before)."""
    session.clear()
    session.update(
        {
            "uid": user.id,
            "login_at": now,
            "seen_at": now,
            "pw": password_fingerprint(user.password_hash),
            "csrf": secrets.token_urlsafe(32),
        }
    )
    if language:
        session["lang"] = language


def end_session(session: Session) -> None:
    language = session.get("lang")
    session.clear()
    session["csrf"] = secrets.token_urlsafe(32)
    if language:
        session["lang"] = language


def _wants_page(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    session = await get_session(request)
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    record = await session_user(request, session)
    if record is not None:
        request[CONSOLE_USER] = record
    _set_i18n(request, session, record)
    if (
        request.method not in SAFE_METHODS
        and request.match_info.route.name not in CSRF_EXEMPT_ROUTES
        and not _csrf_ok(await _presented_csrf(request), str(session["csrf"]))
    ):
        raise PageError(403, "csrf")
    if record is None and request.match_info.route.name not in PUBLIC_ROUTES:
        target = request.path_qs if request.method == "GET" else "/"
        login = URL("/login").with_query({"next": target} if target != "/" else {})
        if request.headers.get("HX-Request"):
            response = web.Response(status=401)
            response.headers["HX-Redirect"] = str(login)
            return response
        return redirect(str(login))
    return await handler(request)


def console_middleware_factory(storage: AbstractStorage) -> Any:
    sessions = session_middleware(storage)

    @web.middleware
    async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Console routes get sessions, the guard and HTML error pages; others pass through."""
        name = request.match_info.route.name or ""
        if name == "console.static":
            response = await handler(request)
            response.headers["Cache-Control"] = (
                "public, max-age=31536000, immutable"
                if "v" in request.query
                else "public, max-age=3600"
            )
            security_headers(response)
            return response
        if not name.startswith("console."):
            if getattr(request.match_info, "http_exception", None) is not None and _wants_page(
                request
            ):
                response = await sessions(request, _not_found_page)
                security_headers(response)
                return response
            return await handler(request)

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await _guard(request, handler)
            except PageError as exc:
                return await error_page(request, exc.status, exc.message)
            except NotFoundError:
                return await error_page(request, 404, "")
            except ApiError as exc:  # a shared helper's refusal (e.g. an unknown kind: 404)
                return await error_page(
                    request, exc.status, "" if exc.status == 404 else exc.message
                )
            except web.HTTPException as exc:  # raised by aiohttp itself (413, 405...)
                if exc.status < 400:
                    return web.Response(status=exc.status, headers=exc.headers)
                return await error_page(request, exc.status, "")
            except Exception:  # the edge: logged, and a page instead of a traceback
                log.exception("console error on %s %s", request.method, request.path)
                return await error_page(request, 500, "")

        response = await sessions(request, guarded)
        security_headers(response)
        return response

    return console_middleware


def _set_i18n(request: web.Request, session: Session, record: User | None) -> None:
    request[I18N] = build_i18n(
        request.app[CONSOLE].catalogs,
        chosen_language=session.get("lang") or (record.language if record else None),
        accept_language=request.headers.get("Accept-Language", ""),
        chosen_timezone=record.timezone if record else None,
        default_timezone=api_context(request).console.default_timezone,
    )


async def _not_found_page(request: web.Request) -> web.StreamResponse:
    return await error_page(request, 404, "")


async def error_page(request: web.Request, status: int, detail: str) -> web.Response:
    """An error as a page in the person's language (never a traceback)."""
    if I18N not in request:
        _set_i18n(request, await get_session(request), None)
    return await render(request, "error.html", {"status": status, "detail": detail}, status)
