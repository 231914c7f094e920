"""Request and response schemas for delivery-status webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from admin_api.schemas import NO_NUL, Body, Query, QueryInt, omitted
from persistence.models import WebhookEventStatus
from persistence.webhook_queries import WebhookEventType

WebhookUrl = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description=(
            "Where events are POSTed: https (plain http only to a loopback receiver in sandbox "
            "mode). Its host must resolve to public addresses only."
        ),
    ),
]
Secret = Annotated[
    str,
    Field(
        min_length=16,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="The HMAC key (16-255 printable characters); generated when left out.",
    ),
]
EventList = Annotated[
    list[WebhookEventType],
    Field(min_length=1, max_length=len(WebhookEventType), description="The events it wants."),
]
Description = Annotated[str, Field(max_length=200, pattern=NO_NUL)]


class WebhookIn(Body):
    url: WebhookUrl
    events: EventList
    secret: Secret | None = None
    description: Description = ""


class WebhookPatch(Body):
    url: WebhookUrl = omitted()
    events: EventList = omitted()
    active: bool = omitted()
    description: Description = omitted()


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="Shown this once: keep it to verify the signatures.")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class WebhookEventsQuery(Query):
    limit: QueryInt = Field(50, ge=1, le=500, description="The newest events, at most 500.")


class WebhookAttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The endpoint's HTTP status, if it answered.")
    error: str | None
    duration_ms: int


class WebhookEventOut(BaseModel):
    id: str = Field(description="The event id (the `Herald-Event-Id` header).")
    type: str
    status: WebhookEventStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    delivered_at: datetime | None
    last_error: str | None
    data: dict[str, Any]
    attempt_log: list[WebhookAttemptOut]


class WebhookEventList(BaseModel):
    items: list[WebhookEventOut]


class WebhookTestOut(BaseModel):
    event_id: str = Field(description="The queued `ping` event; see GET .../events.")
