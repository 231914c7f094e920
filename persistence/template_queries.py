"""Saved message templates: a name unique per owner, a typology, and numbered versions.

Editing a template's content never changes a version: it writes the next one, so a broadcast
that names ``(template_id, template_version)`` can always be read back as it was sent. Owner
scoping as for recipients: superusers see every template, others their own; another user's
template is "not found".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import (
    ConflictError,
    InvalidFieldError,
    NotFoundError,
    Page,
    PageRequest,
    fetch_page,
    like_pattern,
)
from persistence.models import (
    Message,
    MessageTemplate,
    MessageTemplateVersion,
    MessageTypology,
    User,
)


@dataclass(frozen=True)
class TemplateFilter:
    search: str | None = None
    typology_id: int | None = None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: datetime
    created_by: int | None


@dataclass(frozen=True)
class TemplateView:
    """A template with one of its versions (the current one unless asked otherwise)."""

    template: MessageTemplate
    version: MessageTemplateVersion
    versions: list[VersionInfo]

    @property
    def content(self) -> dict[str, Any]:
        return dict(self.version.content or {})


def _visible(user: User) -> ColumnElement[bool]:
    if user.is_superuser:
        return true()
    owned: ColumnElement[bool] = MessageTemplate.owner_id == user.id
    return owned


async def list_templates(
    session: AsyncSession, user: User, filters: TemplateFilter, page: PageRequest
) -> Page[TemplateView]:
    """The templates ``user`` may see, by name, each with its current version."""
    statement = select(MessageTemplate).where(_visible(user))
    if filters.search:
        statement = statement.where(
            MessageTemplate.name.ilike(like_pattern(filters.search), escape="\\")
        )
    if filters.typology_id is not None:
        statement = statement.where(MessageTemplate.typology_id == filters.typology_id)
    rows = await fetch_page(
        session, statement.order_by(func.lower(MessageTemplate.name), MessageTemplate.id), page
    )
    templates = [row[0] for row in rows.items]
    current = await _current_versions(session, templates)
    items = [TemplateView(t, current[t.id], []) for t in templates]
    return Page(items, rows.limit, rows.offset, rows.has_more)


async def _current_versions(
    session: AsyncSession, templates: list[MessageTemplate]
) -> dict[int, MessageTemplateVersion]:
    if not templates:
        return {}
    wanted = {(t.id, t.current_version) for t in templates}
    statement = select(MessageTemplateVersion).where(
        MessageTemplateVersion.template_id.in_([t.id for t in templates])
    )
    found: dict[int, MessageTemplateVersion] = {}
    for version in (await session.execute(statement)).scalars():
        if (version.template_id, version.version) in wanted:
            found[version.template_id] = version
    return found


async def visible_template(session: AsyncSession, user: User, template_id: int) -> MessageTemplate:
    statement = select(MessageTemplate).where(MessageTemplate.id == template_id, _visible(user))
    template = (await session.execute(statement)).scalar()
    if template is None:
        raise NotFoundError(f"template {template_id}")
    return template


async def get_template(
    session: AsyncSession, user: User, template_id: int, version: int | None = None
) -> TemplateView:
    """The template with ``version`` (default: the current one) and the list of its versions."""
    template = await visible_template(session, user, template_id)
    number = template.current_version if version is None else version
    row = (
        await session.execute(
            select(MessageTemplateVersion).where(
                MessageTemplateVersion.template_id == template_id,
                MessageTemplateVersion.version == number,
            )
        )
    ).scalar()
    if row is None:
        raise NotFoundError(f"version {number} of template {template_id}")
    listed = await session.execute(
        select(
            MessageTemplateVersion.version,
            MessageTemplateVersion.created_at,
            MessageTemplateVersion.created_by,
        )
        .where(MessageTemplateVersion.template_id == template_id)
        .order_by(MessageTemplateVersion.version)
    )
    versions = [VersionInfo(int(v), at, by) for v, at, by in listed.all()]
    return TemplateView(template, row, versions)


async def find_template(session: AsyncSession, user: User, reference: str) -> MessageTemplate:
    """A visible template by id or by name (case-insensitive), as an operator types it."""
    if reference.isdigit():
        try:
            return await visible_template(session, user, int(reference))
        except NotFoundError:
            pass
    statement = (
        select(MessageTemplate)
        .where(_visible(user), func.lower(MessageTemplate.name) == reference.strip().lower())
        .order_by(MessageTemplate.id)
    )
    template = (await session.execute(statement)).scalars().first()
    if template is None:
        raise NotFoundError(f"template {reference!r}")
    return template


async def _check_typology(session: AsyncSession, typology_id: int | None) -> None:
    if typology_id is not None and await session.get(MessageTypology, typology_id) is None:
        raise InvalidFieldError("typology_id", f"no message typology with id {typology_id}")


async def _ensure_unique(
    session: AsyncSession, owner_id: int | None, name: str, template_id: int | None
) -> None:
    statement = select(MessageTemplate.id).where(
        func.lower(MessageTemplate.name) == name.lower(),
        MessageTemplate.owner_id.is_(None)
        if owner_id is None
        else MessageTemplate.owner_id == owner_id,
    )
    if template_id is not None:
        statement = statement.where(MessageTemplate.id != template_id)
    if (await session.execute(statement)).first() is not None:
        raise ConflictError(f"you already have a template named {name!r}", {"field": "name"})


async def create_template(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    typology_id: int | None,
    content: Mapping[str, Any],
    now: datetime,
) -> TemplateView:
    """A new template owned by ``user``, at version 1."""
    await _check_typology(session, typology_id)
    await _ensure_unique(session, user.id, name, None)
    template = MessageTemplate(
        owner_id=user.id,
        name=name,
        typology_id=typology_id,
        current_version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(template)
    try:
        await session.flush()
    except IntegrityError:  # lost a race with the same name
        raise ConflictError(f"you already have a template named {name!r}") from None
    session.add(
        MessageTemplateVersion(
            template_id=template.id,
            version=1,
            content=dict(content),
            created_at=now,
            created_by=user.id,
        )
    )
    await session.flush()
    return await get_template(session, user, template.id)


async def update_template(
    session: AsyncSession,
    user: User,
    template_id: int,
    values: Mapping[str, Any],
    *,
    content: Mapping[str, Any] | None,
    now: datetime,
) -> TemplateView:
    """Rename or retype the template (``values``: name, typology_id); new ``content`` becomes
    the next version, the earlier ones stay readable."""
    template = await visible_template(session, user, template_id)
    if "name" in values:
        await _ensure_unique(session, template.owner_id, values["name"], template_id)
        template.name = values["name"]
    if "typology_id" in values:
        await _check_typology(session, values["typology_id"])
        template.typology_id = values["typology_id"]
    if content is not None:
        template.current_version += 1
        session.add(
            MessageTemplateVersion(
                template_id=template.id,
                version=template.current_version,
                content=dict(content),
                created_at=now,
                created_by=user.id,
            )
        )
    template.updated_at = now
    try:
        await session.flush()
    except IntegrityError:  # a concurrent edit took this version number, or the name
        raise ConflictError("the template was changed at the same time; try again") from None
    return await get_template(session, user, template_id)


async def delete_template(session: AsyncSession, user: User, template_id: int) -> None:
    """Gone with its versions; the broadcasts sent from it keep their text (template_id null)."""
    template = await visible_template(session, user, template_id)
    await session.execute(
        delete(MessageTemplateVersion).where(MessageTemplateVersion.template_id == template_id)
    )
    await session.execute(
        update(Message).where(Message.template_id == template_id).values(template_id=None)
    )
    await session.delete(template)
    await session.flush()
