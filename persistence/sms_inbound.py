"""Received SMS in the people's threads: an answer by SMS lands like a text to the bot does.

A received SMS becomes one received message (channel ``sms``) with a sender row for every record
whose stored E.164 number is the sender's, so it shows in each of their threads and inboxes,
under the same owner rules as a Telegram text. Skebby's message id is kept on the sender rows
(``provider_id`` ``skebby:<id>``): storing the same SMS again stores nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import webhook_queries
from persistence.models import (
    DeliveryStatus,
    Direction,
    Message,
    MessageCounter,
    MessageRecipient,
    MessageStatus,
)
from persistence.preferences import recipients_with_number
from persistence.recipient_kinds import RecipientKindRegistry, RecipientRef

SMS_CHANNEL = "sms"


@dataclass(frozen=True)
class ReceivedSms:
    provider_id: str  # Skebby's id_message
    number: str  # the sender, E.164
    text: str
    received_at: datetime
    sim: str = ""


def _provider_key(provider_id: str) -> str:
    return f"skebby:{provider_id}"[:64]


async def already_stored(session: AsyncSession, provider_id: str) -> bool:
    found = await session.scalar(
        select(MessageRecipient.id)
        .where(
            MessageRecipient.channel == SMS_CHANNEL,
            MessageRecipient.is_sender.is_(True),
            MessageRecipient.provider_id == _provider_key(provider_id),
        )
        .limit(1)
    )
    return found is not None


async def store_received_sms(
    session: AsyncSession, kinds: RecipientKindRegistry, sms: ReceivedSms
) -> tuple[int | None, list[RecipientRef]]:
    """Store ``sms`` in the threads of everyone with its number: (the message id, the senders).
    ``None`` when nobody has that number or it was stored before."""
    if await already_stored(session, sms.provider_id):
        return None, []
    senders = await recipients_with_number(session, kinds, sms.number)
    if not senders:
        return None, []
    first_kind, first_id = senders[0]
    model = kinds.get(first_kind).model
    name = await session.scalar(select(model.name).where(model.id == first_id)) or sms.number
    message = Message(
        broadcast_id=str(uuid.uuid4()),
        channel=SMS_CHANNEL,
        body=sms.text,
        direction=Direction.RECEIVED,
        status=MessageStatus.RECEIVED,
        sender_name=str(name)[:150],
        total=len(senders),
        finished_at=sms.received_at,
        created_at=sms.received_at,
        extra={"sms_from": sms.number, "skebby_message_id": sms.provider_id, "skebby_sim": sms.sim},
    )
    session.add(message)
    await session.flush()
    session.add_all(
        MessageRecipient(
            message_id=message.id,
            channel=SMS_CHANNEL,
            recipient_kind=kind,
            recipient_id=rid,
            address=sms.number,
            status=DeliveryStatus.RECEIVED,
            is_sender=True,
            provider_id=_provider_key(sms.provider_id),
            sent_at=sms.received_at,
            created_at=sms.received_at,
        )
        for kind, rid in senders
    )
    session.add(
        MessageCounter(message_id=message.id, status=DeliveryStatus.RECEIVED, count=len(senders))
    )
    await session.flush()
    if subs := await webhook_queries.subscriptions(session):  # in the same transaction
        refs = [(kind, rid) for kind, rid in senders]
        await webhook_queries.add_received_events(session, subs, message.id, refs, sms.received_at)
    return message.id, senders
