"""Request and response schemas for saved message templates and their versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from admin_api.schemas import (
    NO_NUL,
    Body,
    ChannelName,
    HtmlText,
    Id,
    LongText,
    PageMeta,
    PageQuery,
    QueryId,
    Search,
    Subject,
)
from admin_api.schemas_messages import HAS_TEXT, ButtonRow
from channels import rich_text
from channels.composer import has_text


def _not_blank(value: str) -> str:
    if not has_text(value):
        raise ValueError("must not be blank")
    return value


TemplateName = Annotated[
    str,
    Field(min_length=1, max_length=150, pattern=NO_NUL, json_schema_extra={"allOf": [HAS_TEXT]}),
    AfterValidator(_not_blank),
]
TemplateBody = Annotated[
    str,
    Field(max_length=100_000, pattern=NO_NUL, json_schema_extra={"allOf": [HAS_TEXT]}),
    AfterValidator(_not_blank),
]
FormatName = Literal["text", "markdown", "html"]
Buttons = Annotated[list[ButtonRow], Field(max_length=rich_text.MAX_BUTTON_ROWS)]


class ChannelContentIn(Body):
    """What one channel says instead of the shared text (only the fields given)."""

    subject: Subject | None = None
    body: LongText | None = None
    body_html: HtmlText | None = Field(None, description="Email only: the HTML part.")
    format: FormatName | None = None
    buttons: Buttons | None = None


class TemplateContentFields(Body):
    subject: Subject = Field("", description="The subject (an email needs one).")
    body: TemplateBody = Field(description="The text; not blank.")
    body_html: HtmlText | None = Field(None, description="The email's HTML part, as given.")
    format: FormatName = Field("text", description="text, markdown or html, as for a send.")
    buttons: Buttons = Field(default_factory=list, description="URL buttons: rows of {label, url}.")
    per_channel: dict[ChannelName, ChannelContentIn] = Field(
        default_factory=dict,
        description='A channel\'s own content, e.g. {"sms": {"body": "Short text"}}.',
    )


class TemplateIn(TemplateContentFields):
    """A new template (version 1); or, as PUT, the next version of a template in full."""

    name: TemplateName = Field(description="Unique among your templates.")
    typology_id: Id | None = Field(None, description="A message typology.")


class TemplatePatch(Body):
    """Change some fields; any content field given makes the next version (the others are
    carried over from the current one)."""

    name: TemplateName | None = None
    typology_id: Id | None = None
    subject: Subject | None = None
    body: TemplateBody | None = None
    body_html: HtmlText | None = None
    format: FormatName | None = None
    buttons: Buttons | None = None
    per_channel: dict[ChannelName, ChannelContentIn] | None = None


class ChannelContentOut(BaseModel):
    subject: str | None = None
    body: str | None = None
    body_html: str | None = None
    format: str | None = None
    buttons: list[list[dict[str, str]]] | None = None


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    created_by: int | None


class TemplateOut(BaseModel):
    id: int
    name: str
    owner_id: int | None
    typology_id: int | None
    current_version: int
    version: int = Field(description="The version whose content is shown.")
    subject: str
    body: str
    body_html: str | None
    format: str
    buttons: list[list[dict[str, str]]]
    per_channel: dict[str, ChannelContentOut]
    created_at: datetime
    updated_at: datetime
    versions: list[VersionOut] = Field(
        default_factory=list, description="Every version, oldest first (not in lists)."
    )


class TemplatePage(PageMeta):
    items: list[TemplateOut]


class TemplateQuery(PageQuery):
    q: Search | None = Field(None, description="Part of the name (case-insensitive).")
    typology_id: QueryId | None = None


def content_json(body: TemplateContentFields) -> dict[str, Any]:
    """A content model as the stored JSON (per-channel fields only when given)."""
    return {
        "subject": body.subject,
        "body": body.body,
        "body_html": body.body_html,
        "format": body.format,
        "buttons": [[b.model_dump() for b in row] for row in body.buttons],
        "per_channel": {
            channel: own.model_dump(exclude_none=True) for channel, own in body.per_channel.items()
        },
    }
