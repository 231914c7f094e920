"""Response and query schemas for broadcasts: the messages of one send, as one object."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from admin_api.schemas import ChannelName, PageMeta, PageQuery, QueryId, UtcDateTime

BROADCAST_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class BroadcastStatus(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class BroadcastChannelOut(BaseModel):
    message_id: int
    channel: str
    status: str
    total: int
    counters: dict[str, int] = Field(description="Deliveries per status, live.")
    cost_per_unit: str
    finished_at: datetime | None


class RecallOut(BaseModel):
    message_id: int = Field(description="The recall's own message: its deletions.")
    recalls_message_id: int = Field(description="The Telegram message it recalls.")
    status: str
    total: int
    counters: dict[str, int] = Field(description="Deletions per status, live.")
    created_at: datetime


class BroadcastOut(BaseModel):
    """One send: its message per channel with live counters, and its recall if any."""

    id: str
    status: BroadcastStatus = Field(
        description="sending while any channel is; done when every channel is final; "
        "cancelled only when every channel was cancelled."
    )
    channels: list[str]
    subject: str
    body: str
    typology_id: int | None
    sender_id: int | None
    sender_name: str
    created_at: datetime
    send_at: datetime | None
    template_id: int | None = Field(None, description="The template it was sent from.")
    template_version: int | None = Field(None, description="That template's version.")
    is_test: bool = Field(False, description="A test sent to the sender's own addresses.")
    counters: dict[str, int] = Field(description="Deliveries per status, all channels.")
    messages: list[BroadcastChannelOut]
    recalls: list[RecallOut] = Field(default_factory=list)


class BroadcastPage(PageMeta):
    items: list[BroadcastOut]


class BroadcastQuery(PageQuery):
    status: BroadcastStatus | None = None
    channel: ChannelName | None = Field(None, description="Broadcasts that used this channel.")
    typology_id: QueryId | None = None
    created_from: UtcDateTime | None = Field(None, description="Created at or after (UTC).")
    created_to: UtcDateTime | None = Field(None, description="Created before (UTC).")
    sender_id: QueryId | None = Field(
        None, description="Superusers: any sender; others: only their own id."
    )


class BroadcastCancelOut(BaseModel):
    cancelled: int = Field(description="Deliveries cancelled before sending, all channels.")
    broadcast: BroadcastOut


class BroadcastRecallOut(BaseModel):
    cancelled: int = Field(description="Deliveries still pending, now cancelled.")
    to_delete: int = Field(
        description="Delivered Telegram messages whose deletion is queued; follow the "
        "progress in the broadcast's `recalls`."
    )
    in_flight: int = Field(
        default=0,
        description="Telegram sends under way when the recall started: each is deleted once "
        "it is delivered.",
    )
    broadcast: BroadcastOut
