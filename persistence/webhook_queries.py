"""The SQL of delivery-status webhooks: endpoints, the events fanned out to them (an outbox of
their own, claimed under a lease) and every attempt to deliver one.

Events are written in the transaction that makes the outcome they report final (a delivery's
record, an SMS report's settle, an inbound message's store), so none is lost and none is told
for an outcome that rolled back. Each producer first reads the active subscriptions
(:func:`subscriptions`, one small query per batch) and writes nothing when nobody listens.

An endpoint only hears about its owner's things: the deliveries of messages its owner sent,
the answers from recipients its owner owns.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import audit
from persistence.api_keys import KEY_PREFIX as API_KEY_START
from persistence.audit import Actor, AuditAction
from persistence.driver_sql import driver_in_transaction
from persistence.id_filter import id_filters
from persistence.models import (
    ApiKey,
    Customer,
    DeliveryStatus,
    ExternalSubject,
    Message,
    MessageCounter,
    MessageRecipient,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventStatus,
)
from persistence.notify import WEBHOOKS_CHANNEL, notify

MR = MessageRecipient
WE = WebhookEvent


class WebhookEventType(enum.StrEnum):
    """What an endpoint may subscribe to."""

    DELIVERY_SUCCESS = "delivery.success"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_BLOCKED = "delivery.blocked"
    DELIVERY_INVALID = "delivery.invalid"
    DELIVERY_CANCELLED = "delivery.cancelled"
    DELIVERY_DUPLICATE = "delivery.duplicate"
    DELIVERY_RECALLED = "delivery.recalled"
    SMS_REPORT = "sms.report"
    MESSAGE_RECEIVED = "message.received"
    BROADCAST_DONE = "broadcast.done"


# A delivery's final status → the event type that reports it.
DELIVERY_EVENTS: Mapping[str, str] = {
    DeliveryStatus.SUCCESS.value: WebhookEventType.DELIVERY_SUCCESS.value,
    DeliveryStatus.FAILED.value: WebhookEventType.DELIVERY_FAILED.value,
    DeliveryStatus.BLOCKED.value: WebhookEventType.DELIVERY_BLOCKED.value,
    DeliveryStatus.INVALID.value: WebhookEventType.DELIVERY_INVALID.value,
    DeliveryStatus.CANCELLED.value: WebhookEventType.DELIVERY_CANCELLED.value,
    DeliveryStatus.DUPLICATE.value: WebhookEventType.DELIVERY_DUPLICATE.value,
}
RECALLED_EVENT = WebhookEventType.DELIVERY_RECALLED.value
SMS_REPORT_EVENT = WebhookEventType.SMS_REPORT.value
RECEIVED_EVENT = WebhookEventType.MESSAGE_RECEIVED.value
BROADCAST_DONE_EVENT = WebhookEventType.BROADCAST_DONE.value
PING_EVENT = "ping"  # POST /webhooks/{id}/test: to that endpoint only, never subscribed
EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in WebhookEventType)
_OWNER_MODELS: Mapping[str, type[Customer] | type[ExternalSubject]] = {
    "customer": Customer,
    "external_subject": ExternalSubject,
}


# --- endpoints -------------------------------------------------------------------------------


async def create_endpoint(
    session: AsyncSession,
    *,
    owner_id: int,
    url: str,
    events: Sequence[str],
    secret: str,
    description: str = "",
    api_key_id: int | None = None,
    key_prefix: str | None = None,
    actor: Actor | None = None,
) -> WebhookEndpoint:
    """A new active endpoint; ``key_prefix`` (an API key's display prefix) names the key that
    registered it."""
    if api_key_id is None and key_prefix:
        api_key_id = await session.scalar(
            select(ApiKey.id).where(
                ApiKey.user_id == owner_id,
                ApiKey.prefix == key_prefix.removeprefix(API_KEY_START),
                ApiKey.revoked_at.is_(None),
            )
        )
    endpoint = WebhookEndpoint(
        owner_id=owner_id,
        api_key_id=api_key_id,
        url=url,
        events=sorted(set(events)),
        secret=secret,
        description=description,
        active=True,
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    if actor is not None:
        await audit.record(
            session, actor, AuditAction.WEBHOOK_CREATED, "webhook", [endpoint.id], _facts(endpoint)
        )
    return endpoint


def _facts(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint: its host and events (never the secret, nor the
    URL's path and query, which may carry a token)."""
    return {"host": urlsplit(endpoint.url).hostname or "", "events": list(endpoint.events)}


async def list_endpoints(session: AsyncSession, owner_id: int) -> list[WebhookEndpoint]:
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id == owner_id)
        .order_by(WebhookEndpoint.id)
    )
    return list(rows)


async def get_endpoint(
    session: AsyncSession, owner_id: int, endpoint_id: int
) -> WebhookEndpoint | None:
    """The endpoint, if it is ``owner_id``'s (another user's is as absent as a missing one)."""
    return await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.owner_id == owner_id
        )
    )


async def update_endpoint(
    session: AsyncSession,
    owner_id: int,
    endpoint_id: int,
    changes: Mapping[str, Any],
    actor: Actor | None = None,
) -> WebhookEndpoint | None:
    endpoint = await get_endpoint(session, owner_id, endpoint_id)
    if endpoint is None:
        return None
    for name, value in changes.items():
        setattr(endpoint, name, sorted(set(value)) if name == "events" else value)
    await session.flush()
    if actor is not None:
        facts = {**_facts(endpoint), "fields": sorted(changes), "active": endpoint.active}
        await audit.record(
            session, actor, AuditAction.WEBHOOK_UPDATED, "webhook", [endpoint.id], facts
        )
    return endpoint


async def delete_endpoint(
    session: AsyncSession, owner_id: int, endpoint_id: int, actor: Actor | None = None
) -> bool:
    """Delete the endpoint with its events and attempts; False when it is not the owner's."""
    found = await get_endpoint(session, owner_id, endpoint_id)
    if found is None:
        return False
    if actor is not None:
        await audit.record(
            session, actor, AuditAction.WEBHOOK_DELETED, "webhook", [endpoint_id], _facts(found)
        )
    ids = select(WE.id).where(WE.endpoint_id == endpoint_id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.event_id.in_(ids)))
    await session.execute(delete(WE).where(WE.endpoint_id == endpoint_id))
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    return True


@dataclass(frozen=True)
class EventView:
    event: WebhookEvent
    attempts: list[WebhookAttempt]


async def recent_events(
    session: AsyncSession, endpoint_id: int, *, limit: int = 50
) -> list[EventView]:
    """An endpoint's newest events, each with its attempts in order."""
    events = list(
        await session.scalars(
            select(WE)
            .where(WE.endpoint_id == endpoint_id)
            .order_by(WE.created_at.desc(), WE.id)
            .limit(limit)
        )
    )
    attempts: dict[str, list[WebhookAttempt]] = {e.id: [] for e in events}
    if events:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_(list(attempts)))
            .order_by(WebhookAttempt.event_id, WebhookAttempt.attempt, WebhookAttempt.id)
        )
        for attempt in rows:
            attempts[attempt.event_id].append(attempt)
    return [EventView(e, attempts[e.id]) for e in events]


# --- producing events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriptions:
    """The active endpoints' wishes: owner → event type → endpoint ids."""

    wants: Mapping[int, Mapping[str, tuple[int, ...]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.wants)

    def endpoints(self, owner_id: int | None, event_type: str) -> tuple[int, ...]:
        if owner_id is None:
            return ()
        return self.wants.get(owner_id, {}).get(event_type, ())

    def owners_wanting(self, types: Iterable[str]) -> list[int]:
        wanted = set(types)
        return sorted(o for o, by_type in self.wants.items() if wanted & set(by_type))


async def subscriptions(session: AsyncSession) -> Subscriptions:
    """Who wants what now: one small read (nothing, and nothing more to do, when nobody does)."""
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.owner_id, WebhookEndpoint.events).where(
            WebhookEndpoint.active.is_(True)
        )
    )
    wants: dict[int, dict[str, list[int]]] = {}
    for endpoint_id, owner_id, events in rows:
        for event_type in events or ():
            wants.setdefault(owner_id, {}).setdefault(event_type, []).append(endpoint_id)
    return Subscriptions(
        {o: {t: tuple(ids) for t, ids in by_type.items()} for o, by_type in wants.items()}
    )


@dataclass(frozen=True)
class NewEvent:
    owner_id: int | None
    event_type: str
    data: dict[str, Any]


async def add_events(
    session: AsyncSession,
    subs: Subscriptions,
    events: Sequence[NewEvent],
    now: datetime,
    *,
    endpoint_ids: Sequence[int] | None = None,
) -> list[str]:
    """One row per event and endpoint that wants it (or, with ``endpoint_ids``, for those);
    the new event ids."""
    rows: list[dict[str, Any]] = []
    for event in events:
        targets = (
            endpoint_ids
            if endpoint_ids is not None
            else subs.endpoints(event.owner_id, event.event_type)
        )
        for endpoint_id in targets:
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "endpoint_id": endpoint_id,
                    "event_type": event.event_type,
                    "payload": event.data,
                    "status": WebhookEventStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    if rows:
        await session.execute(insert(WE), rows)
        await notify(session, WEBHOOKS_CHANNEL, "")  # every process's sender looks at commit
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class _Reported:
    """What a delivery event says of one delivery."""

    event_type: str
    status: str
    detail: str
    attempts: int


@dataclass(frozen=True)
class FinalDelivery:
    """A delivery whose outcome was just written (``origin_id``: a recall's deletion)."""

    id: int
    status: str
    detail: str
    attempts: int
    origin_id: int | None = None


async def add_delivery_events(
    session: AsyncSession,
    subs: Subscriptions,
    finals: Sequence[FinalDelivery],
    now: datetime,
    *,
    event_types: Mapping[str, str] = DELIVERY_EVENTS,
) -> int:
    """Events for deliveries that reached a final status, for their messages' owners."""
    if not subs or not finals:
        return 0
    # Keyed by the delivery an event reports: a recall's deletion reports the delivery it
    # removed (its message, channel and recipient, status "recalled"), not its own row.
    reported: dict[int, _Reported] = {}
    for final in finals:
        if final.origin_id is not None:
            if final.status == DeliveryStatus.SUCCESS.value:
                reported[final.origin_id] = _Reported(
                    RECALLED_EVENT, DeliveryStatus.RECALLED.value, final.detail, final.attempts
                )
        elif final.status in event_types:
            reported[final.id] = _Reported(
                event_types[final.status], final.status, final.detail, final.attempts
            )
    owners = subs.owners_wanting({r.event_type for r in reported.values()})
    if not owners:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return await _add_delivery_events_postgres(session, subs, reported, now)
    events: list[NewEvent] = []
    for ids in id_filters(MR.id, sorted(reported), dialect):
        rows = await session.execute(
            select(
                MR.id,
                MR.message_id,
                MR.channel,
                MR.recipient_kind,
                MR.recipient_id,
                Message.broadcast_id,
                Message.sender_id,
            )
            .join(Message, Message.id == MR.message_id)
            # A test send ("send me a test") is nobody's broadcast: no events.
            .where(ids, Message.sender_id.in_(owners), Message.is_test.is_(False))
        )
        for d_id, m_id, channel, kind, rid, broadcast_id, owner in rows:
            report = reported[d_id]
            if not subs.endpoints(owner, report.event_type):
                continue
            events.append(
                NewEvent(
                    owner,
                    report.event_type,
                    {
                        "delivery_id": d_id,
                        "message_id": m_id,
                        "broadcast_id": broadcast_id,
                        "channel": channel,
                        "recipient": {"kind": kind, "id": rid},
                        "status": report.status,
                        "detail": report.detail,
                        "attempts": report.attempts,
                    },
                )
            )
    return len(await add_events(session, subs, events, now))


# The events of a batch of outcomes in one statement, their payloads built by the server: this
# runs inside every recorded batch of a broadcast, where building and binding rows in Python
# slowed the broadcast itself (bench/webhooks.py). Matches the generic path field for field.
_DELIVERY_EVENTS_POSTGRES = """
WITH inserted AS (
    INSERT INTO webhook_events
        (id, endpoint_id, event_type, payload, status, attempts, next_attempt_at, created_at)
    SELECT
        gen_random_uuid()::text, s.endpoint_id, v.event_type,
        jsonb_build_object(
            'delivery_id', v.id, 'message_id', m.message_id,
            'broadcast_id', msg.broadcast_id, 'channel', m.channel,
            'recipient', jsonb_build_object('kind', m.recipient_kind, 'id', m.recipient_id),
            'status', v.status, 'detail', v.detail, 'attempts', v.attempts
        ),
        'pending', 0, $9, $9
    FROM unnest($1::bigint[], $2::varchar[], $3::varchar[], $4::text[], $5::int[])
        AS v(id, event_type, status, detail, attempts)
    JOIN message_recipients AS m ON m.id = v.id
    -- A test send ("send me a test") is nobody's broadcast: no events.
    JOIN messages AS msg ON msg.id = m.message_id AND NOT msg.is_test
    JOIN unnest($6::bigint[], $7::varchar[], $8::bigint[]) AS s(owner_id, event_type, endpoint_id)
        ON s.owner_id = msg.sender_id AND s.event_type = v.event_type
    RETURNING 1
)
SELECT count(*) AS written, pg_notify($10, '') IS NULL AS notified
FROM inserted HAVING count(*) > 0
"""


async def _add_delivery_events_postgres(
    session: AsyncSession, subs: Subscriptions, reported: Mapping[int, _Reported], now: datetime
) -> int:
    ids = list(reported)
    reports = list(reported.values())
    targets = [
        (owner, event_type, endpoint_id)
        for owner, by_type in subs.wants.items()
        for event_type, endpoint_ids in by_type.items()
        for endpoint_id in endpoint_ids
    ]
    driver = await driver_in_transaction(await session.connection())
    row = await driver.fetchrow(
        _DELIVERY_EVENTS_POSTGRES,
        ids,
        [r.event_type for r in reports],
        [r.status for r in reports],
        [r.detail for r in reports],
        [r.attempts for r in reports],
        [t[0] for t in targets],
        [t[1] for t in targets],
        [t[2] for t in targets],
        now,
        WEBHOOKS_CHANNEL,  # every process's sender looks at commit
    )
    return 0 if row is None else int(row["written"])


async def add_cancelled_events(
    session: AsyncSession, subs: Subscriptions, message_id: int, ids: Sequence[int], now: datetime
) -> int:
    """``delivery.cancelled`` for deliveries a cancel stopped before sending."""
    finals = [
        FinalDelivery(i, DeliveryStatus.CANCELLED.value, "cancelled before sending", 0) for i in ids
    ]
    return await add_delivery_events(session, subs, finals, now)


async def add_broadcast_done_events(
    session: AsyncSession, subs: Subscriptions, message_ids: Iterable[int], now: datetime
) -> int:
    """``broadcast.done`` for broadcasts whose last open message just finished (among
    ``message_ids``), once per broadcast, with every channel's counters."""
    owners = subs.owners_wanting([BROADCAST_DONE_EVENT])
    ids = list(message_ids)
    if not owners or not ids:
        return 0
    finished = await session.execute(
        select(Message.broadcast_id, Message.sender_id)
        .where(
            Message.id.in_(ids),
            Message.status == MessageStatus.DONE,
            Message.sender_id.in_(owners),
            Message.is_test.is_(False),
        )
        .distinct()
    )
    events: list[NewEvent] = []
    for broadcast_id, owner in finished:
        messages = (
            await session.execute(
                select(Message.id, Message.channel, Message.status, Message.extra).where(
                    Message.broadcast_id == broadcast_id
                )
            )
        ).all()
        if any(s in ("scheduled", "queued", "sending") for _, _, s, _ in messages):
            continue
        counters: dict[int, dict[str, int]] = {}
        for m, status, count in await session.execute(
            select(MessageCounter.message_id, MessageCounter.status, MessageCounter.count).where(
                MessageCounter.message_id.in_([m for m, _, _, _ in messages])
            )
        ):
            if count:
                counters.setdefault(m, {})[status] = int(count)
        events.append(
            NewEvent(
                owner,
                BROADCAST_DONE_EVENT,
                {
                    "broadcast_id": broadcast_id,
                    "messages": [
                        {
                            "message_id": m,
                            "channel": channel,
                            "status": status,
                            "recall": bool((extra or {}).get("recall_of")),
                            "counters": counters.get(m, {}),
                        }
                        for m, channel, status, extra in messages
                    ],
                },
            )
        )
    return len(await add_events(session, subs, events, now))


async def add_received_events(
    session: AsyncSession,
    subs: Subscriptions,
    message_id: int,
    senders: Sequence[tuple[str, int]],
    now: datetime,
) -> int:
    """``message.received`` for an inbound message, for the owners of the records it came from
    (one event per owner)."""
    if not subs.owners_wanting([RECEIVED_EVENT]) or not senders:
        return 0
    owners: dict[int, list[dict[str, Any]]] = {}
    for kind, rid in senders:
        model = _OWNER_MODELS.get(kind)
        if model is None:
            continue
        owner = await session.scalar(select(model.owner_id).where(model.id == rid))
        if owner is not None:
            owners.setdefault(owner, []).append({"kind": kind, "id": rid})
    message = (
        await session.execute(
            select(Message.broadcast_id, Message.channel, Message.body, Message.created_at).where(
                Message.id == message_id
            )
        )
    ).one()
    events = [
        NewEvent(
            owner,
            RECEIVED_EVENT,
            {
                "message_id": message_id,
                "broadcast_id": message.broadcast_id,
                "channel": message.channel,
                "senders": refs,
                "body": message.body,
            },
        )
        for owner, refs in owners.items()
    ]
    return len(await add_events(session, subs, events, now))


# --- the webhook outbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedEvent:
    id: str
    endpoint_id: int
    event_type: str
    payload: dict[str, Any]
    attempts: int  # including this one
    created_at: datetime
    url: str
    secret: str


def _due(now: datetime) -> Any:
    return and_(WE.status == WebhookEventStatus.PENDING, WE.next_attempt_at <= now)


async def rescue_expired(session: AsyncSession, now: datetime) -> int:
    """Events whose sender died mid-attempt (lease run out while ``sending``) are due again."""
    result = await session.execute(
        update(WE)
        .where(WE.status == WebhookEventStatus.SENDING, WE.lease_expires_at < now)
        .values(
            status=WebhookEventStatus.PENDING,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def due_endpoints(session: AsyncSession, now: datetime) -> list[int]:
    """Active endpoints with events due now (one index probe per endpoint)."""
    due = select(WE.id).where(WE.endpoint_id == WebhookEndpoint.id, _due(now)).exists()
    rows = await session.execute(
        select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(True), due)
    )
    return sorted(endpoint_id for (endpoint_id,) in rows)


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    owner: str,
    slots: Mapping[int, int],
) -> list[ClaimedEvent]:
    """Claim up to ``slots[endpoint]`` due events of each endpoint, oldest first, under a lease
    (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several processes share the work)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    claimed: list[tuple[str, int, str, dict[str, Any], int, datetime]] = []
    for endpoint_id, limit in sorted(slots.items()):
        if limit <= 0:
            continue
        due = (
            select(WE.id)
            .where(WE.endpoint_id == endpoint_id, _due(now))
            .order_by(WE.next_attempt_at)
            .limit(limit)
        )
        if postgres:
            due = due.with_for_update(skip_locked=True)
        rows = await session.execute(
            update(WE)
            .where(WE.id.in_(due.scalar_subquery()))
            .values(
                status=WebhookEventStatus.SENDING,
                attempts=WE.attempts + 1,
                lease_owner=owner,
                lease_expires_at=lease_until,
            )
            .returning(WE.id, WE.endpoint_id, WE.event_type, WE.payload, WE.attempts, WE.created_at)
            .execution_options(synchronize_session=False)
        )
        claimed.extend(tuple(row) for row in rows)
    if not claimed:
        return []
    endpoints = {
        e_id: (url, secret)
        for e_id, url, secret in await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.secret).where(
                WebhookEndpoint.id.in_({c[1] for c in claimed})
            )
        )
    }
    return sorted(
        (
            ClaimedEvent(e_id, ep, kind, payload, attempts, created, *endpoints[ep])
            for e_id, ep, kind, payload, attempts, created in claimed
        ),
        key=lambda c: (c.endpoint_id, c.created_at, c.id),
    )


@dataclass(frozen=True)
class AttemptOutcome:
    event_id: str
    attempt: int
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    # What becomes of the event: delivered, failed (for good) or pending again at next_at.
    status: WebhookEventStatus
    next_attempt_at: datetime | None = None


async def record_attempts(
    session: AsyncSession, *, owner: str, outcomes: Sequence[AttemptOutcome]
) -> int:
    """Write attempts and their events' new states in two statements, for the events this
    sender still holds (another's, after a lapsed lease, are left alone); how many it held."""
    if not outcomes:
        return 0
    held = await session.execute(
        select(WE.id).where(
            WE.id.in_([o.event_id for o in outcomes]),
            WE.status == WebhookEventStatus.SENDING,
            WE.lease_owner == owner,
        )
    )
    ours = set(held.scalars())
    mine = [o for o in outcomes if o.event_id in ours]
    if not mine:
        return 0
    table = cast(Table, WE.__table__)
    events = table.c
    await session.execute(
        update(table)
        .where(events.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            lease_owner=None,
            lease_expires_at=None,
            last_error=bindparam("b_error"),
            delivered_at=func.coalesce(
                bindparam("b_delivered", type_=events.delivered_at.type), events.delivered_at
            ),
            next_attempt_at=func.coalesce(
                bindparam("b_next", type_=events.next_attempt_at.type), events.next_attempt_at
            ),
        ),
        [
            {
                "b_id": o.event_id,
                "b_status": o.status.value,
                "b_error": o.error,
                "b_delivered": (
                    o.attempted_at if o.status is WebhookEventStatus.DELIVERED else None
                ),
                "b_next": o.next_attempt_at,
            }
            for o in mine
        ],
    )
    await session.execute(
        insert(WebhookAttempt),
        [
            {
                "event_id": o.event_id,
                "attempt": o.attempt,
                "attempted_at": o.attempted_at,
                "status_code": o.status_code,
                "error": o.error,
                "duration_ms": o.duration_ms,
            }
            for o in mine
        ],
    )
    return len(mine)


async def record_attempt(session: AsyncSession, *, owner: str, outcome: AttemptOutcome) -> bool:
    """Write one attempt and its event's new state, if this sender still holds the event."""
    return await record_attempts(session, owner=owner, outcomes=[outcome]) == 1


async def release(session: AsyncSession, *, owner: str, ids: Sequence[str], now: datetime) -> None:
    """Give claimed-but-unsent events back (a clean stop), without counting an attempt."""
    if not ids:
        return
    await session.execute(
        update(WE)
        .where(
            WE.id.in_(list(ids)), WE.status == WebhookEventStatus.SENDING, WE.lease_owner == owner
        )
        .values(
            status=WebhookEventStatus.PENDING,
            attempts=WE.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def event_counts(session: AsyncSession) -> dict[str, int]:
    """Events per status (for the benchmark and the metrics)."""
    rows = await session.execute(select(WE.status, func.count()).group_by(WE.status))
    return {status: int(count) for status, count in rows}
