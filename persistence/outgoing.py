"""What the dispatcher reads about the messages it delivers: content and attachments."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.enqueue import AttachmentRecord
from persistence.models import Message, MessageAttachment


@dataclass(frozen=True)
class OutgoingRow:
    """A message's content as stored, with its attachments in the order they were given."""

    id: int
    channel: str
    subject: str
    body: str
    body_html: str | None
    extra: dict[str, Any]
    attachments: tuple[AttachmentRecord, ...]
    first_due_at: datetime  # when its deliveries were first due: created, or scheduled for


async def load_outgoing(session: AsyncSession, message_ids: Collection[int]) -> list[OutgoingRow]:
    ids = list(message_ids)
    if not ids:
        return []
    files: dict[int, list[AttachmentRecord]] = defaultdict(list)
    attachments = await session.execute(
        select(
            MessageAttachment.message_id,
            MessageAttachment.file_name,
            MessageAttachment.content_type,
            MessageAttachment.size,
            MessageAttachment.sha256,
            MessageAttachment.storage_path,
        )
        .where(MessageAttachment.message_id.in_(ids))
        .order_by(MessageAttachment.id)
    )
    for message_id, file_name, content_type, size, sha256, storage_path in attachments:
        if message_id is not None:
            files[message_id].append(
                AttachmentRecord(file_name, content_type, size, sha256, storage_path)
            )
    rows = await session.execute(
        select(
            Message.id,
            Message.channel,
            Message.subject,
            Message.body,
            Message.body_html,
            Message.extra,
            Message.created_at,
            Message.send_at,
        ).where(Message.id.in_(ids))
    )
    return [
        OutgoingRow(
            m_id,
            channel,
            subject,
            body,
            html,
            dict(extra or {}),
            tuple(files[m_id]),
            max(created_at, send_at) if send_at is not None else created_at,
        )
        for m_id, channel, subject, body, html, extra, created_at, send_at in rows
    ]
