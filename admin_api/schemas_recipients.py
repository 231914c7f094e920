"""Request and response schemas for recipients, typologies, CSV import and the inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from admin_api.schemas import (
    MAX_CHAT_ID,
    Body,
    EmailText,
    Id,
    JsonObject,
    Name,
    Note,
    PageMeta,
    PageQuery,
    Query,
    Search,
    Short,
)

ChatId = Annotated[int, Field(ge=-MAX_CHAT_ID, le=MAX_CHAT_ID)]
PhoneText = Annotated[str, Field(max_length=32, pattern=r"^[^\x00]*$")]
ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00]*$",
        description="Your own code for the record; unique per kind and owner.",
    ),
]


class RecipientCreate(Body):
    """A recipient; ``sms`` is normalised to E.164 and ``email`` checked (422 names the field)."""

    name: Name
    vat_number: Short | None = None
    fiscal_code: Short | None = None
    sms: PhoneText | None = Field(None, description="Mobile number; stored in E.164.")
    email: EmailText | None = None
    telegram_chat_id: ChatId | None = None
    telegram_opted_out: bool = False
    telegram_blocked: bool = False
    note: Note = ""
    extra: JsonObject = Field(default_factory=dict)
    external_id: ExternalId | None = None
    typology_id: Id | None = None
    owner_id: Id | None = Field(None, description="Superusers only; others own what they create.")


class RecipientPatch(Body):
    """Only the fields sent change; null clears an optional field."""

    name: Name | None = None
    vat_number: Short | None = None
    fiscal_code: Short | None = None
    sms: PhoneText | None = None
    email: EmailText | None = None
    telegram_chat_id: ChatId | None = None
    telegram_opted_out: bool | None = None
    telegram_blocked: bool | None = None
    note: Note | None = None
    extra: JsonObject | None = None
    external_id: ExternalId | None = None
    typology_id: Id | None = None
    owner_id: Id | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> RecipientPatch:
        for name in ("name", "telegram_opted_out", "telegram_blocked", "note", "extra"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class RecipientOut(BaseModel):
    id: int
    kind: str
    name: str
    vat_number: str | None
    fiscal_code: str | None
    sms: str | None
    email: str | None
    telegram_chat_id: int | None
    telegram_opted_out: bool
    telegram_blocked: bool
    note: str
    extra: dict[str, Any]
    external_id: str | None
    typology_id: int | None
    owner_id: int | None
    created_at: datetime
    updated_at: datetime


class RecipientPage(PageMeta):
    items: list[RecipientOut]


class RecipientQuery(PageQuery):
    typology_id: Id | None = None
    q: Search | None = Field(None, description="Name contains (case-insensitive).")
    has_telegram: bool | None = None
    has_email: bool | None = None
    has_sms: bool | None = None
    blocked: bool | None = Field(None, description="Blocked the bot on Telegram.")
    opted_out: bool | None = Field(None, description="Sent /stop to the bot.")
    owner_id: Id | None = None


class TypologyIn(Body):
    name: Name
    description: Note = ""


class TypologyPatch(Body):
    name: Name | None = None
    description: Note | None = None

    @model_validator(mode="after")
    def _not_null(self) -> TypologyPatch:
        for name in ("name", "description"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TypologyOut(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime


class TypologyPage(PageMeta):
    items: list[TypologyOut]


class TypologyQuery(PageQuery):
    q: Search | None = None


class ImportMatch(StrEnum):
    EXTERNAL_ID = "external_id"
    PHONE = "phone"
    EMAIL = "email"


class ImportQuery(Query):
    all_or_nothing: bool = Field(
        False, description="Write nothing when any row is rejected (the answer is then 422)."
    )
    match: ImportMatch | None = Field(
        None,
        description=(
            "Update the record whose column equals the row's (`phone` is the `sms` column) "
            "instead of creating a second one. Default: `external_id` when the file has that "
            "column. Rows with an `id` always update that record."
        ),
    )


class ImportRowError(BaseModel):
    field: str
    message: str


class ImportRowOut(BaseModel):
    line: int = Field(description="The row's line in the file (the header is line 1).")
    status: str = Field(description="created, updated, unchanged or rejected")
    id: int | None = None
    changed: list[str] = Field(default_factory=list, description="Updated: the columns changed.")
    errors: list[ImportRowError] = Field(default_factory=list)


class ImportReportOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    applied: bool
    match: str = Field(description="What rows were matched on: id, external_id, sms or email.")
    delimiter: str
    columns: list[str]
    ignored_columns: list[str]
    rows: list[ImportRowOut]


class ThreadEntryOut(BaseModel):
    message_id: int
    delivery_id: int
    direction: str
    channel: str
    subject: str
    body: str
    status: str
    sender_name: str
    created_at: datetime
    sent_at: datetime | None
    read: bool = Field(description="Received: the caller read it. Sent: the recipient read it.")


class ThreadOut(PageMeta):
    kind: str
    recipient_id: int
    unread: int
    items: list[ThreadEntryOut]


class ThreadSummaryOut(BaseModel):
    kind: str
    recipient_id: int
    name: str
    received: int
    unread: int
    last_received_at: datetime


class InboxPage(PageMeta):
    items: list[ThreadSummaryOut]


class InboxQuery(PageQuery):
    unread_only: bool = False
