"""Request and response schemas for broadcasts (messages) and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from admin_api.schemas import (
    NO_NUL,
    RECIPIENT_KIND_MARKER,
    Body,
    ChannelName,
    HtmlText,
    Id,
    JsonObject,
    LongText,
    PageMeta,
    PageQuery,
    Query,
    QueryBool,
    QueryId,
    Subject,
    UtcDateTime,
)
from admin_api.schemas_broadcasts import BROADCAST_ID_PATTERN
from channels import rich_text
from channels.composer import BLANK_CHARACTERS
from persistence.models import DeliveryStatus, Direction, MessageStatus

BroadcastId = Annotated[str, Field(pattern=BROADCAST_ID_PATTERN)]
KindName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
IdList = Annotated[list[Id], Field(max_length=100_000)]
_KIND_KEYS: JsonDict = {"propertyNames": RECIPIENT_KIND_MARKER}
# "Not blank", as the composer decides it (channels.composer.has_text).
HAS_TEXT: JsonDict = {"pattern": f"[^{BLANK_CHARACTERS}]"}


def _has_text_or_template(schema: dict[str, Any]) -> None:
    """A body, or a template to take it from; an email's subject likewise."""
    template: JsonDict = {
        "required": ["template_id"],
        "properties": {"template_id": {"type": "integer"}},
    }
    schema["if"] = {
        "required": ["channels"],
        "properties": {"channels": {"contains": {"const": "email"}}},
        "not": template,
    }
    schema["then"] = {"required": ["subject"], "properties": {"subject": HAS_TEXT}}


def _selects_someone(schema: dict[str, Any]) -> None:
    """The composer's rules that span fields, in JSON Schema."""
    _has_text_or_template(schema)
    schema["anyOf"] = [
        {"required": [field], "properties": {field: {"minProperties": 1}}}
        for field in ("recipients", "typologies")
    ]


# What the composer accepts as a button's URL, roughly (it also checks the host name).
URL_PATTERN = r"^([hH][tT][tT][pP][sS]?://[A-Za-z0-9]|[tT][gG]://[^\s])[^\s]*$"


class ButtonIn(Body):
    """An inline URL button: on Telegram under the message; in email a link; in SMS its URL."""

    label: Annotated[
        str,
        Field(
            min_length=1,
            max_length=rich_text.MAX_BUTTON_LABEL,
            pattern=NO_NUL,
            json_schema_extra={"allOf": [HAS_TEXT]},
        ),
    ]
    url: Annotated[str, Field(min_length=1, max_length=rich_text.MAX_URL, pattern=URL_PATTERN)] = (
        Field(description="http://, https:// or tg:// only.")
    )


ButtonRow = Annotated[list[ButtonIn], Field(min_length=1, max_length=rich_text.MAX_BUTTONS_PER_ROW)]


class ContentBody(Body):
    """What a message says and on which channels, written out or taken from a template."""

    model_config = ConfigDict(json_schema_extra=_has_text_or_template)

    channels: list[ChannelName] = Field(
        min_length=1, max_length=4, json_schema_extra={"uniqueItems": True}
    )
    template_id: Id | None = Field(
        None,
        description="A saved template to take the content from (its current version, or "
        "`template_version`); the fields given here replace the template's on every channel "
        "(a blank subject or body leaves the template's).",
    )
    template_version: Id | None = Field(
        None, description="A version of `template_id` (default: its current version)."
    )
    subject: Subject = Field(
        "", description="Required, not blank, with the email channel (unless a template gives it)."
    )
    body: LongText = Field(
        "",
        description="The text; required and not blank unless `template_id` gives it (a 422 "
        "otherwise). With sms it must fit SKEBBY_MAX_FRAGMENTS fragments.",
        json_schema_extra={"allOf": [HAS_TEXT]},
    )
    body_html: HtmlText | None = Field(
        None, description="The email's HTML part as given (else made from the body)."
    )
    format: Literal["text", "markdown", "html"] = Field(
        "text",
        description="How the body is written: text (as typed, the default), markdown "
        "(**bold**, *italic*, `code`, [label](https://…), line breaks) or html (Telegram's "
        "tags only). Invalid markup is a 422 naming its line and column.",
    )
    buttons: list[ButtonRow] = Field(
        default_factory=list,
        max_length=rich_text.MAX_BUTTON_ROWS,
        description="URL buttons, rows of {label, url}: under the Telegram message, as links "
        "in email, as addresses in the SMS text.",
    )
    typology_id: Id | None = Field(
        None, description="A message typology (default: the template's)."
    )
    extra: JsonObject = Field(
        default_factory=dict,
        description="Free-form JSON kept with the message; format and buttons are set by their "
        "own fields (the message's extra shows them).",
        json_schema_extra={"not": {"anyOf": [{"required": ["format"]}, {"required": ["buttons"]}]}},
    )


class ComposeBody(ContentBody):
    """A broadcast: one message per channel to the named recipients and typology selections.

    Name recipients or typologies (or both); give a body or a template; an email needs a
    subject that is not blank."""

    model_config = ConfigDict(json_schema_extra=_selects_someone)

    recipients: dict[KindName, IdList] = Field(
        default_factory=dict,
        description='Recipient ids per kind, e.g. {"customer": [1, 2]}.',
        json_schema_extra=_KIND_KEYS,
    )
    typologies: dict[KindName, Annotated[list[Id], Field(max_length=1000)]] = Field(
        default_factory=dict,
        description="Every recipient of these typologies, per kind.",
        json_schema_extra=_KIND_KEYS,
    )
    include_related: bool = Field(True, description="Also reach related recipients.")
    send_at: UtcDateTime | None = Field(
        None,
        description="Schedule for later: a future time with its UTC offset. A past time is "
        "refused (422) unless `send_now_if_past` is true.",
    )
    send_now_if_past: bool = Field(
        False, description="When `send_at` has already passed, send at once instead of refusing."
    )
    presend: bool = Field(False, description="Dry run: plan only, send nothing.")


class ComposePayload(ComposeBody):
    """The ``payload`` part of a multipart broadcast: as the JSON body, but the text may be
    blank when attachments carry the message."""

    body: LongText = Field("", description="The text; may be blank when there are attachments.")


class RecipientRefIn(Body):
    kind: KindName = Field(json_schema_extra=RECIPIENT_KIND_MARKER)
    id: Id


class TestSendBody(ContentBody):
    """A draft to send to yourself only: your email and your linked Telegram chat."""

    recipient: RecipientRefIn | None = Field(
        None, description="Render the draft as this recipient would receive it."
    )


class SkippedOut(BaseModel):
    channel: str
    reason: str


class TestMessageOut(BaseModel):
    id: int
    channel: str
    counts: dict[str, int]


class TestSendOut(BaseModel):
    """What was queued to your own addresses (marked as a test) and which channels were not."""

    broadcast_id: str | None = Field(description="null: no channel had an address of yours.")
    messages: list[TestMessageOut]
    skipped: list[SkippedOut]


class ComposeQuery(Query):
    presend: QueryBool = Field(False, description="Dry run (same as presend in the body).")


class ProblemOut(BaseModel):
    kind: str
    id: int
    address: str | None
    reason: str


class SmsOut(BaseModel):
    encoding: str
    characters: int
    fragments: int
    fits: bool


class PreviewOut(BaseModel):
    """One recipient's rendered message on a channel (which fields: per channel)."""

    kind: str
    id: int
    subject: str | None = Field(None, description="email, storage")
    text: str | None = Field(None, description="sms, the email text part, storage")
    html: str | None = Field(None, description="the email HTML part")
    texts: list[str] | None = Field(None, description="telegram: the messages, as split")
    parse_mode: str | None = Field(None, description="telegram")
    encoding: str | None = Field(None, description="sms: gsm or ucs2")
    fragments: int | None = Field(None, description="sms")
    problem: str | None = Field(None, description="why this one could not be rendered")


class ChannelPlanOut(BaseModel):
    channel: str
    valid: int
    invalid: int
    duplicate: int
    invalid_recipients: list[ProblemOut]
    duplicate_recipients: list[ProblemOut]
    units: int
    cost_per_unit: str
    estimated_cost: str
    problems: list[str]
    drops: list[str] = Field(
        default_factory=list, description="What this channel leaves out of the content."
    )
    sms: SmsOut | None = None
    telegram_parts: int | None = None
    personalised: bool = Field(
        False,
        description="The content has placeholders: every recipient was rendered, units and "
        "cost are counted on each rendered text, and a recipient missing a value is invalid "
        "(reason `missing extra.contract_number`).",
    )
    sms_encodings: dict[str, int] | None = Field(
        None, description="Personalised SMS: how many recipients' texts are gsm and ucs2."
    )
    previews: list[PreviewOut] = Field(
        default_factory=list,
        description="Personalised: the first few messages as their recipients get them.",
    )


class RecipientRefOut(BaseModel):
    kind: str
    id: int


class PlanOut(BaseModel):
    """The dry run: per-channel counts, problems, SMS encoding and fragments, cost estimate."""

    recipients: int
    not_visible: list[RecipientRefOut]
    channels: list[ChannelPlanOut]
    estimated_cost: str


class QueuedMessageOut(BaseModel):
    id: int
    channel: str
    counts: dict[str, int]
    units: int
    estimated_cost: str


class SendOut(BaseModel):
    broadcast_id: str = Field(description="Read it at /api/v1/broadcasts/{broadcast_id}.")
    status: str
    send_at: str | None = Field(description="When it is scheduled for; null: sent at once.")
    messages: list[QueuedMessageOut]
    replayed: bool = False


class AttachmentOut(BaseModel):
    id: int
    file_name: str
    content_type: str
    size: int
    sha256: str


class MessageOut(BaseModel):
    id: int
    broadcast_id: str
    channel: str
    direction: str
    status: str
    typology_id: int | None
    subject: str
    body: str
    body_html: str | None
    sender_id: int | None
    sender_name: str
    send_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    cost_per_unit: str
    invoiced: bool
    total: int
    template_id: int | None = Field(None, description="The template it was sent from.")
    template_version: int | None = Field(None, description="That template's version.")
    is_test: bool = Field(False, description="A test sent to the sender's own addresses.")
    counters: dict[str, int] = Field(description="Deliveries per status, live.")
    extra: dict[str, object]
    attachments: list[AttachmentOut] = Field(default_factory=list)


class MessagePage(PageMeta):
    items: list[MessageOut]


class MessageQuery(PageQuery):
    broadcast_id: BroadcastId | None = Field(None, description="The messages of one broadcast.")
    channel: ChannelName | None = None
    status: MessageStatus | None = None
    typology_id: QueryId | None = None
    direction: Direction | None = None
    created_from: UtcDateTime | None = Field(None, description="Created at or after (UTC).")
    created_to: UtcDateTime | None = Field(None, description="Created before (UTC).")
    sender_id: QueryId | None = Field(
        None, description="Superusers: any sender; others: only their own id."
    )


class DeliveryOut(BaseModel):
    id: int
    recipient_kind: str
    recipient_id: int
    channel: str
    address: str
    status: str
    status_detail: str
    attempts: int
    provider_id: str | None
    last_error: str | None
    sent_number: int
    is_sender: bool
    created_at: datetime
    sent_at: datetime | None
    read_at: datetime | None


class DeliveryPage(PageMeta):
    message_id: int
    items: list[DeliveryOut]


class DeliveryQuery(PageQuery):
    status: DeliveryStatus | None = None


class CancelOut(BaseModel):
    message_id: int
    cancelled: int = Field(description="Deliveries cancelled before sending.")
    status: str
    counters: dict[str, int]


class ReadOut(BaseModel):
    message_id: int
    read_at: datetime
