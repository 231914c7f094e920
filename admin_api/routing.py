"""The route table: each operation once, used both to register aiohttp routes and to write the
OpenAPI document, so the two cannot drift apart. Also the small helpers handlers share."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from admin_api.context import API_CONTEXT, ApiContext
from admin_api.errors import ApiError, forbidden, from_validation, not_found
from admin_api.schemas import MAX_BIG_ID, MAX_ID, PageMeta
from persistence.audit import Actor, ActorKind
from persistence.common_queries import Page, PageRequest, may_name_owner
from persistence.models import User
from persistence.recipient_kinds import RecipientKind

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
P = TypeVar("P", bound=PageMeta)
T = TypeVar("T")

USER = web.RequestKey("user", User)
# The display prefix of the API key the request came with (never the key itself): the audit log.
KEY_PREFIX = web.RequestKey("api_key_prefix", str)
# What aiohttp raises for a multipart body it cannot parse (bad boundary, headers, framing).
MULTIPART_ERRORS = (ValueError, AssertionError, KeyError, HttpProcessingError)
API_PREFIX = "/api/v1"
JSON = "application/json"


@dataclass(frozen=True)
class Response:
    description: str
    model: type[BaseModel] | None = None
    content_type: str = JSON
    schema: Mapping[str, Any] | None = None  # instead of a model (plain text, free-form JSON)


@dataclass(frozen=True)
class MultipartForm:
    """A ``multipart/form-data`` body: its parts, as models (sent as JSON parts) or schemas.

    Parts not listed are refused; ``rules`` adds JSON Schema keywords across parts (anyOf...).
    """

    parts: Mapping[str, type[BaseModel] | Mapping[str, Any]]
    required: tuple[str, ...] = ()
    rules: Mapping[str, Any] = field(default_factory=dict)
    text_parts: Mapping[str, str] = field(default_factory=dict)  # part name -> media type


@dataclass(frozen=True)
class RequestBody:
    """Accepted request bodies by content type: a pydantic model, a form or a raw JSON Schema."""

    content: Mapping[str, type[BaseModel] | MultipartForm | Mapping[str, Any]]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /api/v1/messages/{message_id}
    handler: Handler
    summary: str
    tag: str
    responses: Mapping[int, Response]
    query: type[BaseModel] | None = None
    body: RequestBody | None = None
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    public: bool = False
    superuser: bool = False
    description: str = ""
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Reads or writes the database: answers 503 while it is unreachable.
    database: bool = True

    @property
    def operation_id(self) -> str:
        words = self.path.removeprefix(API_PREFIX).replace("{", "").replace("}", "")
        slug = "_".join(w.replace("-", "_") for w in words.split("/") if w)
        return f"{self.method.lower()}_{slug or 'root'}"

    def aiohttp_path(self) -> str:
        path = self.path
        for name, schema in self.path_params.items():
            if schema.get("type") == "integer":
                path = path.replace("{" + name + "}", "{" + name + r":\d+}")
        return path

    def error_statuses(self) -> list[int]:
        statuses = {422, 500, *self.errors}
        if self.database:
            statuses.add(503)
        if not self.public:
            statuses.add(401)
        if self.superuser:
            statuses.add(403)
        if self.path_params:
            statuses.add(404)
        if self.body is not None:
            statuses.update({400, 413, 415})
        return sorted(statuses - set(self.responses))


OPERATIONS = web.AppKey("operations", dict[object, Operation])


def id_param(description: str, *, big: bool = False) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_BIG_ID if big else MAX_ID,
        "description": description,
    }


# --- helpers for handlers ------------------------------------------------------------------


def context(request: web.Request) -> ApiContext:
    return request.app[API_CONTEXT]


@asynccontextmanager
async def autocommit(request: web.Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection without a transaction, for single-statement reads on hot paths."""
    engine = context(request).sessions.kw["bind"]
    async with engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")


def current_user(request: web.Request) -> User:
    return request[USER]


def origin(request: web.Request) -> dict[str, str | None]:
    """Where a request came from, as the audit log keeps it (the peer address, the user agent)."""
    return {"remote_addr": request.remote, "user_agent": request.headers.get("User-Agent")}


def api_actor(request: web.Request) -> Actor:
    """The caller of an API request, for the audit log: the key's owner and the key's prefix."""
    return Actor.of_user(
        current_user(request),
        ActorKind.API_KEY,
        key_prefix=request.get(KEY_PREFIX),
        **origin(request),
    )


def require_superuser(request: web.Request) -> User:
    user = current_user(request)
    if not user.is_superuser:
        raise forbidden("only a superuser may do this")
    return user


def require_own_filter(request: web.Request, field: str, owner_id: int | None) -> None:
    """A filter naming another user's records is refused (403), not answered with nothing."""
    if owner_id is not None and not may_name_owner(current_user(request), owner_id):
        message = "only a superuser may name another user"
        raise ApiError(
            403,
            "forbidden",
            f"query.{field}: {message}",
            [{"loc": ["query", field], "message": message}],
        )


def path_id(request: web.Request, name: str, *, big: bool = False, what: str = "") -> int:
    raw = request.match_info[name]
    limit = MAX_BIG_ID if big else MAX_ID
    if not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= limit:
        raise not_found(f"{what or name.removesuffix('_id')} {raw}")
    return int(raw)


def recipient_kind(request: web.Request) -> RecipientKind:
    name = request.match_info["kind"]
    kinds = context(request).recipient_kinds
    if name not in kinds:
        raise not_found(f"recipient kind {name!r}")
    return kinds.get(name)


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate_strings(dict(request.query))
    except ValidationError as exc:
        raise from_validation(exc, "query") from None


def operation_of(request: web.Request) -> Operation | None:
    """The route-table entry of the matched route (None for 404s and routes of other apps)."""
    return request.app[OPERATIONS].get(request.match_info.route)


@web.middleware
async def query_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown or repeated query parameters are refused by name: a typo never passes silently."""
    operation = operation_of(request)
    if operation is not None and request.query:
        known = set(operation.query.model_fields) if operation.query is not None else set()
        unknown = sorted(set(request.query) - known)
        repeated = sorted({n for n in request.query if len(request.query.getall(n)) > 1})
        if unknown or repeated:
            problems = [
                *({"loc": ["query", n], "message": "unknown query parameter"} for n in unknown),
                *({"loc": ["query", n], "message": "given more than once"} for n in repeated),
            ]
            accepted = ", ".join(sorted(known)) or "none"
            raise ApiError(
                422,
                "validation_error",
                f"query.{(unknown or repeated)[0]}: "
                + ("unknown query parameter" if unknown else "given more than once")
                + f" (this operation takes: {accepted})",
                problems,
            )
    return await handler(request)


def page_of(query: Any) -> PageRequest:
    return PageRequest(limit=int(query.limit), offset=int(query.offset))


def require_content_type(request: web.Request, *accepted: str) -> str:
    given = request.content_type.lower()
    if given not in accepted:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as {' or '.join(accepted)} (got {given or 'no content type'})",
        )
    return given


def parse_json(raw: bytes | str, model: type[M], part: str | None = None) -> M:
    """The JSON body, or the JSON ``part`` of a multipart body, validated by ``model``.

    Malformed JSON is a 400 for a body; for a part the framing was fine and the part is a field
    whose value is wrong: 422 naming it.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            if part is None:
                raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
            raise ApiError(
                422,
                "validation_error",
                f"{part}: not valid JSON",
                [{"loc": ["body", part], "message": "not valid JSON"}],
            ) from None
        raise from_validation(exc, part or "body") from None


async def json_body(request: web.Request, model: type[M]) -> M:
    require_content_type(request, JSON)
    return parse_json(await request.read(), model)


def render(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(),
        status=status,
        content_type=JSON,
        headers=headers,
    )


def render_page(
    model: type[P], page: Page[T], convert: Callable[[T], Any], **fields: Any
) -> web.Response:
    """One page of a list view: its items converted, and where the next page starts."""
    return render(
        model(
            items=[convert(item) for item in page.items],
            limit=page.limit,
            offset=page.offset,
            next_offset=page.next_offset,
            **fields,
        )
    )


def render_json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":"), default=str).encode(),
        status=status,
        content_type=JSON,
    )
