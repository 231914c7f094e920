"""Saved message templates: list, create, read (with its versions), edit (a new version),
delete, and read one version."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.routing import (
    JSON,
    RequestBody,
    Response,
    api_actor,
    context,
    current_user,
    id_param,
    json_body,
    page_of,
    parse_query,
    path_id,
    render,
    render_page,
)
from admin_api.routing import Operation as Op
from admin_api.schemas import Deleted
from admin_api.schemas_templates import (
    ChannelContentOut,
    TemplateIn,
    TemplateOut,
    TemplatePage,
    TemplatePatch,
    TemplateQuery,
    VersionOut,
    content_json,
)
from channels.templates import PER_CHANNEL, check_content, normalised
from persistence import audit
from persistence.audit import AuditAction
from persistence.template_queries import (
    TemplateFilter,
    TemplateView,
    create_template,
    delete_template,
    get_template,
    list_templates,
    update_template,
)

TEMPLATE_ID = {"template_id": id_param("The template id.")}
VERSION = {**TEMPLATE_ID, "version": id_param("The version number.")}
_CONTENT_FIELDS = ("subject", "body", "body_html", "format", "buttons", PER_CHANNEL)


def template_out(view: TemplateView, *, with_versions: bool = True) -> TemplateOut:
    t = view.template
    content = normalised(view.content)
    return TemplateOut(
        id=t.id,
        name=t.name,
        owner_id=t.owner_id,
        typology_id=t.typology_id,
        current_version=t.current_version,
        version=view.version.version,
        subject=content["subject"],
        body=content["body"],
        body_html=content["body_html"],
        format=content["format"],
        buttons=content["buttons"],
        per_channel={
            channel: ChannelContentOut.model_validate(own)
            for channel, own in content[PER_CHANNEL].items()
        },
        created_at=t.created_at,
        updated_at=t.updated_at,
        versions=[
            VersionOut(version=v.version, created_at=v.created_at, created_by=v.created_by)
            for v in view.versions
        ]
        if with_versions
        else [],
    )


async def list_templates_view(request: web.Request) -> web.Response:
    """The caller's templates (a superuser's: all), by name."""
    ctx = context(request)
    query = parse_query(request, TemplateQuery)
    async with ctx.sessions() as session:
        page = await list_templates(
            session,
            current_user(request),
            TemplateFilter(search=query.q, typology_id=query.typology_id),
            page_of(query),
        )
    return render_page(TemplatePage, page, lambda v: template_out(v, with_versions=False))


async def create_template_view(request: web.Request) -> web.Response:
    ctx = context(request)
    user = current_user(request)
    body = await json_body(request, TemplateIn)
    content = content_json(body)
    check_content(content)
    async with ctx.sessions.begin() as session:
        view = await create_template(
            session,
            user,
            name=body.name,
            typology_id=body.typology_id,
            content=content,
            now=ctx.clock(),
        )
        await audit.record(
            session,
            api_actor(request),
            AuditAction.TEMPLATE_CREATED,
            "template",
            [view.template.id],
            {"name": view.template.name, "version": 1},
        )
        out = template_out(view)
    return render(out, 201, {"Location": f"/api/v1/templates/{out.id}"})


async def get_template_view(request: web.Request) -> web.Response:
    ctx = context(request)
    template_id = path_id(request, "template_id", what="template")
    async with ctx.sessions() as session:
        view = await get_template(session, current_user(request), template_id)
    return render(template_out(view))


async def get_version_view(request: web.Request) -> web.Response:
    ctx = context(request)
    template_id = path_id(request, "template_id", what="template")
    version = path_id(request, "version", what="version")
    async with ctx.sessions() as session:
        view = await get_template(session, current_user(request), template_id, version)
    return render(template_out(view))


async def _edit(
    request: web.Request, values: dict[str, Any], content: dict[str, Any] | None
) -> web.Response:
    ctx = context(request)
    user = current_user(request)
    template_id = path_id(request, "template_id", what="template")
    if content is not None:
        check_content(content)
    async with ctx.sessions.begin() as session:
        view = await update_template(
            session, user, template_id, values, content=content, now=ctx.clock()
        )
        await audit.record(
            session,
            api_actor(request),
            AuditAction.TEMPLATE_UPDATED,
            "template",
            [template_id],
            {
                "fields": sorted({*values, *(["content"] if content is not None else [])}),
                "version": view.template.current_version,
            },
        )
        out = template_out(view)
    return render(out)


async def replace_template_view(request: web.Request) -> web.Response:
    """PUT: the template in full; its content becomes the next version."""
    body = await json_body(request, TemplateIn)
    return await _edit(
        request, {"name": body.name, "typology_id": body.typology_id}, content_json(body)
    )


async def patch_template_view(request: web.Request) -> web.Response:
    """PATCH: some fields; a content field makes the next version, the rest carried over."""
    ctx = context(request)
    body = await json_body(request, TemplatePatch)
    given = body.model_fields_set
    values: dict[str, Any] = {}
    if "name" in given and body.name is not None:
        values["name"] = body.name
    if "typology_id" in given:
        values["typology_id"] = body.typology_id
    content: dict[str, Any] | None = None
    if given & set(_CONTENT_FIELDS):
        template_id = path_id(request, "template_id", what="template")
        async with ctx.sessions() as session:
            current = await get_template(session, current_user(request), template_id)
        content = normalised(current.content)
        dumped = body.model_dump(include=given & set(_CONTENT_FIELDS), exclude_none=False)
        for name, value in dumped.items():
            if value is None and name in ("body", "subject", "format", "buttons", PER_CHANNEL):
                continue  # null for a required field: keep the current value
            if name == PER_CHANNEL:
                value = {
                    ch: {k: v for k, v in own.items() if v is not None} for ch, own in value.items()
                }
            content[name] = value
    return await _edit(request, values, content)


async def delete_template_view(request: web.Request) -> web.Response:
    """The broadcasts sent from it keep their text; they no longer name it."""
    ctx = context(request)
    template_id = path_id(request, "template_id", what="template")
    async with ctx.sessions.begin() as session:
        await delete_template(session, current_user(request), template_id)
        await audit.record(
            session,
            api_actor(request),
            AuditAction.TEMPLATE_DELETED,
            "template",
            [template_id],
            {},
        )
    return render(Deleted())


def operations() -> list[Op]:
    base = "/api/v1/templates"
    return [
        Op(
            "GET",
            base,
            list_templates_view,
            "List message templates",
            "templates",
            {200: Response("A page of templates (current versions).", TemplatePage)},
            query=TemplateQuery,
        ),
        Op(
            "POST",
            base,
            create_template_view,
            "Save a message template",
            "templates",
            {201: Response("Created, at version 1.", TemplateOut)},
            body=RequestBody({JSON: TemplateIn}),
            errors=(409,),
        ),
        Op(
            "GET",
            base + "/{template_id}",
            get_template_view,
            "Read a template (current version) and its versions",
            "templates",
            {200: Response("The template.", TemplateOut)},
            path_params=TEMPLATE_ID,
        ),
        Op(
            "PUT",
            base + "/{template_id}",
            replace_template_view,
            "Replace a template: its content becomes the next version",
            "templates",
            {200: Response("The template at its new version.", TemplateOut)},
            body=RequestBody({JSON: TemplateIn}),
            path_params=TEMPLATE_ID,
            errors=(409,),
        ),
        Op(
            "PATCH",
            base + "/{template_id}",
            patch_template_view,
            "Edit a template: a content field makes the next version",
            "templates",
            {200: Response("The template.", TemplateOut)},
            body=RequestBody({JSON: TemplatePatch}),
            path_params=TEMPLATE_ID,
            errors=(409,),
        ),
        Op(
            "DELETE",
            base + "/{template_id}",
            delete_template_view,
            "Delete a template and its versions",
            "templates",
            {200: Response("Deleted.", Deleted)},
            path_params=TEMPLATE_ID,
        ),
        Op(
            "GET",
            base + "/{template_id}/versions/{version}",
            get_version_view,
            "Read one version of a template",
            "templates",
            {200: Response("The template with that version's content.", TemplateOut)},
            path_params=VERSION,
        ),
    ]
