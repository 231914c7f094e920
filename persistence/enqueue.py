"""The outbox's writes for a new broadcast: the message, every delivery row, attachments, the
live counters' first values and the Idempotency-Key's stored answer.

The composer decides what to write; everything here runs inside the caller's transaction, so a
broadcast is either entirely queued or not at all. Delivery rows go in bulk: PostgreSQL's COPY,
consuming the records as they are produced (the server inserts while the caller classifies the
next recipients), or one executemany on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.driver_sql import driver_in_transaction
from persistence.models import (
    Direction,
    IdempotencyKey,
    Message,
    MessageAttachment,
    MessageRecipient,
    MessageStatus,
    MessageTypology,
)
from persistence.notify import OUTBOX_CHANNEL, notify
from persistence.outbox import add_to_counters


class NewDelivery(NamedTuple):
    """One delivery row as the COPY writes it; the fields are the columns, in order."""

    message_id: int
    channel: str
    recipient_kind: str
    recipient_id: int
    address: str
    status: str
    status_detail: str
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: int = 0
    sent_number: int = 0
    is_sender: bool = False
    # A personalised broadcast's values (channels.personalise), as JSON text; None otherwise.
    params: str | None = None


DELIVERY_COLUMNS = NewDelivery._fields


@dataclass(frozen=True)
class NewMessage:
    """One broadcast on one channel, as the composer queues it."""

    broadcast_id: str
    channel: str
    subject: str
    body: str
    body_html: str | None
    typology_id: int | None
    extra: dict[str, Any]
    cost_per_unit: Decimal
    sender_id: int
    sender_name: str
    send_at: datetime | None
    status: MessageStatus
    total: int
    created_at: datetime
    template_id: int | None = None
    template_version: int | None = None
    is_test: bool = False


@dataclass(frozen=True)
class AttachmentRecord:
    """A stored attachment file: its safe name, type, size, checksum and place on disk."""

    file_name: str
    content_type: str
    size: int
    sha256: str
    storage_path: str  # relative to the attachments root


@dataclass(frozen=True)
class StoredAnswer:
    """What was answered to the first request carrying an Idempotency-Key."""

    request_hash: str
    response: dict[str, Any]


async def message_typology_exists(session: AsyncSession, typology_id: int) -> bool:
    return await session.get(MessageTypology, typology_id) is not None


async def insert_message(session: AsyncSession, message: NewMessage) -> int:
    row = Message(
        broadcast_id=message.broadcast_id,
        channel=message.channel,
        typology_id=message.typology_id,
        subject=message.subject,
        body=message.body,
        body_html=message.body_html,
        direction=Direction.SENT,
        extra=message.extra,
        cost_per_unit=message.cost_per_unit,
        sender_id=message.sender_id,
        sender_name=message.sender_name,
        send_at=message.send_at,
        status=message.status,
        total=message.total,
        created_at=message.created_at,
        template_id=message.template_id,
        template_version=message.template_version,
        is_test=message.is_test,
    )
    session.add(row)
    await session.flush()
    return int(row.id)


async def insert_deliveries(session: AsyncSession, records: Iterable[NewDelivery]) -> None:
    """Insert delivery rows: COPY on PostgreSQL (consuming ``records`` as it sends them), one
    executemany on SQLite."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        driver = await driver_in_transaction(connection)
        await driver.copy_records_to_table(
            MessageRecipient.__tablename__, records=records, columns=list(DELIVERY_COLUMNS)
        )
        return
    parameters = [record._asdict() for record in records]
    for row in parameters:  # SQLAlchemy's JSON type wants the value, not its JSON text
        if row["params"] is not None:
            row["params"] = json.loads(row["params"])
    if parameters:
        await connection.execute(insert(MessageRecipient), parameters)


async def set_initial_counters(
    session: AsyncSession, message_id: int, counts: Mapping[str, int]
) -> None:
    await add_to_counters(session, {(message_id, status): n for status, n in counts.items()})


async def insert_attachments(
    session: AsyncSession, message_id: int, attachments: Sequence[AttachmentRecord]
) -> None:
    if not attachments:
        return
    await session.execute(
        insert(MessageAttachment),
        [
            {
                "message_id": message_id,
                "file_name": a.file_name,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "storage_path": a.storage_path,
            }
            for a in attachments
        ],
    )


async def mark_done(session: AsyncSession, message_id: int, now: datetime) -> None:
    """A message with nobody to deliver to is final as soon as it is written."""
    await session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(status=MessageStatus.DONE, finished_at=now)
        .execution_options(synchronize_session=False)
    )


async def announce(session: AsyncSession, channel: str) -> None:
    """Every process's dispatcher learns at commit that ``channel`` has new deliveries."""
    await notify(session, OUTBOX_CHANNEL, channel)


async def stored_answer(session: AsyncSession, user_id: int, key: str) -> StoredAnswer | None:
    row = (
        await session.execute(
            select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
    ).first()
    return None if row is None else StoredAnswer(row[0], dict(row[1]))


async def store_answer(
    session: AsyncSession, user_id: int, key: str, request_hash: str, response: dict[str, Any]
) -> None:
    """Keep the answer for replays; a concurrent first use of the key fails on flush with an
    IntegrityError (the unique constraint), which the caller turns into a replay."""
    session.add(
        IdempotencyKey(user_id=user_id, key=key, request_hash=request_hash, response=response)
    )
    await session.flush()
