"""Request and response schemas for the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from admin_api.schemas import NO_NUL, PageMeta, PageQuery, UtcDateTime
from persistence.audit import ActorKind, AuditAction

ActorName = Annotated[str, Field(min_length=1, max_length=150, pattern=NO_NUL)]
SubjectKind = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]
SubjectId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


class AuditQuery(PageQuery):
    action: AuditAction | None = None
    actor: ActorName | None = Field(
        None, description="A username (`bot` for the Telegram bot) or an API key's prefix."
    )
    actor_kind: ActorKind | None = None
    subject_kind: SubjectKind | None = Field(
        None, description="message, customer, external_subject, api_key, user..."
    )
    subject_id: SubjectId | None = Field(None, description="Events naming this id.")
    since: UtcDateTime | None = Field(None, description="At or after (RFC 3339 with an offset).")
    until: UtcDateTime | None = Field(None, description="Before (RFC 3339 with an offset).")


class AuditEventOut(BaseModel):
    id: int
    occurred_at: datetime
    actor_kind: ActorKind
    actor_id: int | None = Field(description="The user acting (for an API key, its owner).")
    actor_label: str = Field(description="Their username, or `bot`.")
    key_prefix: str | None = Field(description="The API key's prefix (never the key).")
    action: AuditAction
    subject_kind: str
    subject_ids: list[str]
    detail: dict[str, object] = Field(description="Counts, names, fields changed.")
    remote_addr: str | None
    user_agent: str | None


class AuditPage(PageMeta):
    items: list[AuditEventOut]
