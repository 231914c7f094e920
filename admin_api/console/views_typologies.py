"""Typologies: of each recipient kind and of messages. Everyone reads them; superusers change
them (the API's rule)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    PageError,
    api_context,
    flash,
    form,
    redirect,
    render,
    text_field,
    tr,
    user,
)
from admin_api.context import ApiContext
from persistence.common_queries import ConflictError, NotFoundError, PageRequest
from persistence.models import MessageTypology
from persistence.typology_queries import create_typology, delete_typology, list_typologies

Route = tuple[str, str, Any, str]
MESSAGES = "messages"


def _model(request: web.Request) -> tuple[str, type[Any]]:
    scope = request.match_info["scope"]
    if scope == MESSAGES:
        return scope, MessageTypology
    kinds = api_context(request).recipient_kinds
    if scope not in kinds:
        raise NotFoundError(f"typologies of {scope!r}")
    return scope, kinds.get(scope).typology_model


def _superuser(request: web.Request) -> None:
    if not user(request).is_superuser:
        raise PageError(403, tr(request, "Only a superuser may change typologies."))


async def _page(
    request: web.Request, errors: dict[str, str], values: dict[str, str], status: int = 200
) -> web.Response:
    scope, model = _model(request)
    async with api_context(request).sessions() as session:
        page = await list_typologies(session, model, None, PageRequest(limit=500, offset=0))
    return await render(
        request,
        "typologies.html",
        {
            "scope": scope,
            "scopes": [MESSAGES, *api_context(request).recipient_kinds.names()],
            "typologies": page.items,
            "errors": errors,
            "values": values,
        },
        status,
    )


async def typologies_page(request: web.Request) -> web.Response:
    return await _page(request, {}, {})


async def create(request: web.Request) -> web.Response:
    _superuser(request)
    scope, model = _model(request)
    data = await form(request)
    values = {
        "name": text_field(data, "name", 300),
        "description": text_field(data, "description", 2000),
    }
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = tr(request, "Enter a name.")
    elif len(values["name"]) > 255:
        errors["name"] = tr(request, "At most %(limit)s characters.", limit=255)
    if not errors:
        try:
            async with api_context(request).sessions.begin() as session:
                await create_typology(session, model, values)
        except ConflictError:
            errors["name"] = tr(request, "A typology with this name already exists.")
    if errors:
        return await _page(request, errors, values, 422)
    await flash(request, tr(request, "Typology %(name)s added.", name=values["name"]))
    return redirect(f"/typologies/{scope}")


async def delete(request: web.Request) -> web.Response:
    _superuser(request)
    scope, model = _model(request)
    raw = request.match_info["typology_id"]
    if not raw.isdigit() or len(raw) > 10:
        raise NotFoundError(f"typology {raw}")
    async with api_context(request).sessions.begin() as session:
        await delete_typology(session, model, int(raw))
    await flash(request, tr(request, "Typology deleted; what had it keeps existing without one."))
    return redirect(f"/typologies/{scope}")


def routes(_context: ApiContext) -> list[Route]:
    return [
        ("GET", "/typologies/{scope}", typologies_page, "typologies"),
        ("POST", "/typologies/{scope}", create, "typology_create"),
        ("POST", r"/typologies/{scope}/{typology_id:\d+}/delete", delete, "typology_delete"),
    ]
