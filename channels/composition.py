"""What the composer takes and gives: the request, the per-channel plan (presend), the answer to a
send, the composer's settings and the errors that refuse a request."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from channels.addresses import Classification, Problem
from channels.attachments import IncomingAttachment
from channels.sms_text import SmsAnalysis
from persistence.recipient_kinds import RecipientRef

CHANNELS = ("telegram", "email", "sms", "storage")
# ``extra[REPLY_EXTRA_KEY] = True`` marks an answer to one person (the console's answer box): the
# Telegram channel sends it with the replies' priority on the shared budget. Only a message to
# exactly one named recipient on Telegram alone may carry it, so no broadcast can jump the queue.
REPLY_EXTRA_KEY = "reply"
# A rich body's format ("markdown" or "html"; absent for plain text) and its URL buttons (rows of
# {"label", "url"}) are stored in the message's ``extra`` under these keys (channels.rich_text).
FORMAT_EXTRA_KEY = "format"
BUTTONS_EXTRA_KEY = "buttons"
# What a channel's own content may replace in a request (a template's per-channel text).
CONTENT_FIELDS = ("subject", "body", "body_html", "format", "buttons")
# A test send's subject starts with this (and its message is marked is_test).
TEST_PREFIX = "[TEST] "
# A test send's deliveries name the user, not a recipient (no unsubscribe link, no preferences).
OWN_KIND = "user"


class CompositionError(Exception):
    """The request cannot be sent as given; ``field`` names the offending input."""

    def __init__(self, field: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.details = details


class RecipientsNotVisibleError(CompositionError):
    def __init__(self, refs: Sequence[RecipientRef]) -> None:
        listed = ", ".join(f"{kind}:{rid}" for kind, rid in refs[:20])
        super().__init__(
            "recipients",
            f"{len(refs)} recipient(s) do not exist or are not yours: {listed}",
            [{"kind": kind, "id": rid} for kind, rid in refs],
        )
        self.refs = list(refs)


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was already used for a different request."""


@dataclass(frozen=True)
class ComposerConfig:
    default_region: str = "IT"
    costs: Mapping[str, Decimal] = field(default_factory=dict)
    sms_max_fragments: int = 7
    telegram_parse_mode: str | None = "HTML"
    typology_required: bool = False
    attachments_root: Path = Path("./data/attachments")
    max_attachment_bytes: int = 20 * 1024 * 1024
    max_attachments: int = 10
    max_body_chars: int = 100_000


@dataclass
class ComposeRequest:
    channels: list[str]
    body: str
    subject: str = ""
    body_html: str | None = None
    typology_id: int | None = None
    recipients: dict[str, list[int]] = field(default_factory=dict)
    typology_selection: dict[str, list[int]] = field(default_factory=dict)
    include_related: bool = True
    attachments: list[IncomingAttachment] = field(default_factory=list)
    send_at: datetime | None = None
    # A send_at already past is refused unless the caller asks to send at once instead.
    send_now_if_past: bool = False
    idempotency_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # "text" (escaped as written), "markdown" or "html" (channels.rich_text)
    format: str = "text"
    # URL buttons: rows of {"label": ..., "url": ...}, at most 3 rows of 3
    buttons: list[list[dict[str, str]]] = field(default_factory=list)
    # Per channel, what replaces the fields above on that channel (CONTENT_FIELDS): the
    # per-channel content of a template.
    channel_content: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The saved template (and version) this content came from, recorded with the messages.
    template_id: int | None = None
    template_version: int | None = None

    def for_channel(self, channel: str) -> ComposeRequest:
        """The request as ``channel`` sends it: its own content in place of the shared one."""
        own = self.channel_content.get(channel)
        if not own:
            return self
        values = {k: v for k, v in own.items() if k in CONTENT_FIELDS and v is not None}
        return dataclasses.replace(self, channel_content={}, **values)

    def fingerprint(self) -> str:
        """Identifies the request's content, so a reused Idempotency-Key can be checked."""
        canonical: dict[str, Any] = {
            "channels": self.channels,
            "body": self.body,
            "subject": self.subject,
            "body_html": self.body_html,
            "typology_id": self.typology_id,
            "recipients": {k: sorted(v) for k, v in sorted(self.recipients.items())},
            "selection": {k: sorted(v) for k, v in sorted(self.typology_selection.items())},
            "related": self.include_related,
            "attachments": [
                [a.file_name, hashlib.sha256(a.data).hexdigest()] for a in self.attachments
            ],
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "extra": self.extra,
        }
        # Only when used, so the fingerprints of requests made before they existed still match.
        if self.format != "text":
            canonical["format"] = self.format
        if self.buttons:
            canonical["buttons"] = self.buttons
        if self.channel_content:
            canonical["channel_content"] = self.channel_content
        if self.template_id is not None:
            canonical["template"] = [self.template_id, self.template_version]
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass
class ChannelPlan:
    channel: str
    classification: Classification
    units_per_recipient: int
    cost_per_unit: Decimal
    problems: list[str] = field(default_factory=list)
    # What this channel leaves out of the content ("attachments are not sent by SMS")
    drops: list[str] = field(default_factory=list)
    sms: SmsAnalysis | None = None
    telegram_parts: int | None = None
    # A personalised broadcast: each recipient's units (SMS fragments, Telegram messages) as
    # counted on their rendered text, the SMS encodings used, and the first rendered messages.
    units_by_recipient: dict[RecipientRef, int] | None = None
    encodings: dict[str, int] | None = None
    previews: list[dict[str, Any]] = field(default_factory=list)
    personalised: bool = False

    @property
    def units(self) -> int:
        valid = self.classification.valid
        by_recipient = self.units_by_recipient
        if by_recipient is not None:
            default = self.units_per_recipient
            return sum(by_recipient.get((t.kind, t.id), default) for t in valid)
        return self.units_per_recipient * len(valid)

    @property
    def estimated_cost(self) -> Decimal:
        return self.cost_per_unit * self.units

    def to_json(self, *, list_limit: int = 1000) -> dict[str, Any]:
        c = self.classification
        result: dict[str, Any] = {
            "channel": self.channel,
            "valid": len(c.valid),
            "invalid": len(c.invalid),
            "duplicate": len(c.duplicates),
            "invalid_recipients": [_problem_json(p) for p in c.invalid[:list_limit]],
            "duplicate_recipients": [_problem_json(p) for p in c.duplicates[:list_limit]],
            "units": self.units,
            "cost_per_unit": str(self.cost_per_unit),
            "estimated_cost": str(self.estimated_cost),
            "problems": self.problems,
            "drops": self.drops,
        }
        if self.sms is not None:
            result["sms"] = {
                "encoding": self.sms.encoding,
                "characters": self.sms.characters,
                "fragments": self.sms.fragments,
                "fits": self.sms.fits,
            }
        if self.telegram_parts is not None:
            result["telegram_parts"] = self.telegram_parts
        result["personalised"] = self.personalised
        if self.encodings is not None:
            result["sms_encodings"] = self.encodings
        result["previews"] = self.previews
        return result


@dataclass
class Plan:
    channels: list[ChannelPlan]
    recipients: int
    not_visible: list[RecipientRef]

    def to_json(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "not_visible": [{"kind": k, "id": i} for k, i in self.not_visible],
            "channels": [c.to_json() for c in self.channels],
            "estimated_cost": str(sum((c.estimated_cost for c in self.channels), Decimal(0))),
        }


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "kind": problem.kind,
        "id": problem.id,
        "address": problem.address,
        "reason": problem.reason,
    }


@dataclass(frozen=True)
class QueuedMessage:
    """One channel's message of a queued broadcast, with its deliveries counted by status."""

    id: int
    channel: str
    counts: dict[str, int]
    units: int
    estimated_cost: str


@dataclass(frozen=True)
class SkippedChannel:
    channel: str
    reason: str


@dataclass(frozen=True)
class TestSendResult:
    """A test send: the broadcast written for the caller's own addresses, and the channels it
    skipped (no address of theirs for it)."""

    broadcast_id: str | None
    messages: list[QueuedMessage]
    skipped: list[SkippedChannel]

    def to_json(self) -> dict[str, Any]:
        return {
            "broadcast_id": self.broadcast_id,
            "messages": [
                {"id": m.id, "channel": m.channel, "counts": m.counts} for m in self.messages
            ],
            "skipped": [{"channel": s.channel, "reason": s.reason} for s in self.skipped],
        }


@dataclass(frozen=True)
class SendResult:
    """The answer to a send; also what an Idempotency-Key replays (stored as JSON)."""

    broadcast_id: str
    status: str
    send_at: str | None  # as stored: None when it is sent at once
    messages: list[QueuedMessage]
    replayed: bool = False

    @property
    def message_ids(self) -> list[int]:
        return [m.id for m in self.messages]

    def to_json(self) -> dict[str, Any]:
        return {
            "broadcast_id": self.broadcast_id,
            "status": self.status,
            "send_at": self.send_at,
            "messages": [
                {
                    "id": m.id,
                    "channel": m.channel,
                    "counts": m.counts,
                    "units": m.units,
                    "estimated_cost": m.estimated_cost,
                }
                for m in self.messages
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, replayed: bool = False) -> SendResult:
        return cls(
            broadcast_id=str(data["broadcast_id"]),
            status=str(data["status"]),
            send_at=None if data.get("send_at") is None else str(data["send_at"]),
            messages=[
                QueuedMessage(
                    id=int(m["id"]),
                    channel=str(m["channel"]),
                    counts={str(k): int(v) for k, v in m["counts"].items()},
                    units=int(m["units"]),
                    estimated_cost=str(m["estimated_cost"]),
                )
                for m in data["messages"]
            ],
            replayed=replayed,
        )
