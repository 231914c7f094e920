"""The channel protocol: what the dispatcher hands a channel and what it gets back.

Every channel (telegram, email, skebby, storage) is one module implementing ``Channel``. A channel
receives a message and a batch of its deliveries (one delivery for per-recipient channels, up to
``max_batch`` recipients sharing the same text for batching channels such as Skebby) and answers
one ``DeliveryResult`` per delivery. Leases, retries, counters and bookkeeping are the
dispatcher's; provider quirks and rate limits are the channel's.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class Outcome(enum.StrEnum):
    SUCCESS = "success"  # accepted by the provider (final)
    UNKNOWN = "unknown"  # accepted, delivery report pending (SMS)
    RETRY = "retry"  # transient: try again later
    FAILED = "failed"  # permanent failure
    INVALID = "invalid"  # the address cannot receive this (e.g. chat not found)
    BLOCKED = "blocked"  # the person blocked us / is deactivated: flag the recipient


@dataclass(frozen=True)
class StoredAttachment:
    file_name: str
    content_type: str
    size: int
    sha256: str
    path: Path

    @property
    def is_image(self) -> bool:
        return self.content_type in {"image/jpeg", "image/png", "image/gif", "image/webp"}


@dataclass(frozen=True)
class OutgoingMessage:
    id: int
    channel: str
    subject: str
    body: str
    body_html: str | None = None
    attachments: tuple[StoredAttachment, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    id: int
    message_id: int
    recipient_kind: str
    recipient_id: int
    address: str
    attempts: int  # including the current one
    batch_key: str | None = None
    # A personalised broadcast's placeholder values for this recipient (channels.personalise);
    # None: the message is sent as written.
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeliveryResult:
    delivery_id: int
    outcome: Outcome
    detail: str = ""
    provider_id: str | None = None
    sent_number: int = 0  # billable units: SMS fragments, 1 per email, parts per Telegram text
    retry_after: float | None = None  # for RETRY: wait at least this long
    counts_as_attempt: bool = True  # a provider's "slow down" (429) is not the delivery's fault
    new_address: str | None = None  # the provider moved the address (Telegram ChatMigrated)
    # For RETRY: the provider itself failed (unreachable, timed out, 5xx), not this delivery.
    # Such retries spend no attempt (the deadline ends them) and feed the channel's breaker.
    provider_failed: bool = False

    @classmethod
    def for_all(
        cls, deliveries: Sequence[Delivery], outcome: Outcome, **kwargs: Any
    ) -> list[DeliveryResult]:
        return [cls(delivery_id=d.id, outcome=outcome, **kwargs) for d in deliveries]


class DeliveryError(Exception):
    """A delivery did not go through. Channels raise the narrow subclasses."""

    outcome = Outcome.FAILED

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TransientDeliveryError(DeliveryError):
    """Worth another attempt later; ``provider_failed`` when the provider itself is down
    (network trouble, timeouts, 5xx) rather than this one delivery being refused for now."""

    outcome = Outcome.RETRY

    def __init__(
        self, detail: str, *, retry_after: float | None = None, provider_failed: bool = False
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.provider_failed = provider_failed


class PermanentDeliveryError(DeliveryError):
    """The provider refused for good; retrying cannot help."""


class InvalidAddressError(PermanentDeliveryError):
    outcome = Outcome.INVALID


class RecipientBlockedError(PermanentDeliveryError):
    outcome = Outcome.BLOCKED


class DeliveryObserver(Protocol):
    """Told about every delivery outcome (the service's metrics implement it)."""

    def delivery(self, channel: str, status: str, seconds: float | None = None) -> None: ...


@runtime_checkable
class Channel(Protocol):
    """One outbound channel. ``max_batch`` > 1 means deliveries arrive grouped per message."""

    name: str
    max_batch: int
    sandboxed: bool

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        """Deliver ``message`` to every delivery in the batch; one result per delivery."""
        ...

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        """After a crash: did the provider already accept this batch (``batch_key``)?

        ``None`` means the provider has no record of it (or cannot tell): safe to send again.
        """
        ...

    async def close(self) -> None: ...


@runtime_checkable
class GroupingChannel(Protocol):
    """A batching channel whose deliveries of one message may not all share a batch: the
    dispatcher batches together only those with the same ``batch_group`` (the SMS encoding of a
    personalised text: one order has one encoding)."""

    def batch_group(self, message: OutgoingMessage, delivery: Delivery) -> str | None: ...
