"""Request and response schemas for recipients, typologies, CSV import and the inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field

from admin_api.schemas import (
    Body,
    ChatId,
    EmailText,
    Id,
    JsonObject,
    Name,
    Note,
    PageMeta,
    PageQuery,
    Query,
    QueryBool,
    QueryId,
    Search,
    Short,
    omitted,
)

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
    related_customer_id: Id | None = Field(
        None,
        description="External subjects only: the customer this subject acts for (sends to "
        "either reach both with include_related). The customer must be visible to the caller.",
    )
    owner_id: Id | None = Field(
        None,
        description="Superusers may name any user; others only themselves (else 403).",
    )


class RecipientPatch(Body):
    """Only the fields sent change. ``null`` clears vat_number, fiscal_code, sms, email,
    telegram_chat_id, typology_id, related_customer_id and owner_id; the other fields cannot be
    ``null``."""

    name: Name = omitted()
    vat_number: Short | None = None
    fiscal_code: Short | None = None
    sms: PhoneText | None = None
    email: EmailText | None = None
    telegram_chat_id: ChatId | None = None
    telegram_opted_out: bool = omitted()
    telegram_blocked: bool = omitted()
    note: Note = omitted()
    extra: JsonObject = omitted()
    external_id: ExternalId = omitted()
    typology_id: Id | None = None
    related_customer_id: Id | None = Field(
        None, description="External subjects only: the customer it acts for; null unlinks."
    )
    owner_id: Id | None = Field(
        None, description="Superusers: any user, or null for none; others: only themselves."
    )


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
    related_customer_id: int | None = Field(
        None, description="External subjects: the customer it acts for."
    )
    owner_id: int | None
    created_at: datetime
    updated_at: datetime


class RecipientPage(PageMeta):
    items: list[RecipientOut]


class RecipientQuery(PageQuery):
    typology_id: QueryId | None = None
    q: Search | None = Field(None, description="Name contains (case-insensitive).")
    has_telegram: QueryBool | None = None
    has_email: QueryBool | None = None
    has_sms: QueryBool | None = None
    blocked: QueryBool | None = Field(None, description="Blocked the bot on Telegram.")
    opted_out: QueryBool | None = Field(None, description="Sent /stop to the bot.")
    owner_id: QueryId | None = Field(
        None, description="Superusers: any owner; others: only their own id."
    )


class TypologyIn(Body):
    name: Name
    description: Note = ""


class TypologyPatch(Body):
    """Only the fields sent change; neither can be ``null``."""

    name: Name = omitted()
    description: Note = omitted()


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
    all_or_nothing: QueryBool = Field(
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
    unread_only: QueryBool = False


class PreferenceChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    TELEGRAM = "telegram"


class PreferenceIn(Body):
    """Whether the recipient accepts ``channel``, for one message typology or for all."""

    channel: PreferenceChannel
    typology_id: Id | None = Field(
        None, description="A message typology; null: every typology (the general choice)."
    )
    accepted: bool


class PreferencesIn(Body):
    """The recipient's whole set of choices: what is not listed is accepted."""

    preferences: list[PreferenceIn] = Field(max_length=500)


class PreferenceOut(BaseModel):
    channel: str
    typology_id: int | None
    typology_name: str | None
    accepted: bool
    source: str = Field(description="Who chose it: person, staff, import or skebby.")
    updated_at: datetime


class PreferencesOut(BaseModel):
    """A recipient's channel choices; the typology's choice wins over the general one. No
    choice for a channel: accepted."""

    kind: str
    recipient_id: int
    preferences: list[PreferenceOut]
