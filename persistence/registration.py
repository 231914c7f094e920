"""Linking Telegram chats to recipients, and storing what recipients write to the bot.

Every query looks at all recipient kinds of the registry, so a person who is both a customer and an
external subject is linked (and later reached) as both. Phone numbers are matched exactly on the
stored E.164 form; nothing here guesses with suffixes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Select,
    bindparam,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.database import SessionFactory
from persistence.models import (
    DeliveryStatus,
    Direction,
    Message,
    MessageCounter,
    MessageRecipient,
    MessageStatus,
)
from persistence.recipient_kinds import RecipientKind, RecipientKindRegistry

TELEGRAM_CHANNEL = "telegram"
_PHONE_NOISE = re.compile(r"[\s().\-/]")


@dataclass(frozen=True)
class LinkedRecipient:
    """A recipient record linked to a Telegram chat."""

    kind: str
    id: int
    name: str


def normalize_phone(raw: str, default_region: str) -> str | None:
    """The E.164 form of ``raw``, or None when it is not a valid number.

    Telegram sends contact numbers without the leading ``+`` (``393331234567``), so an
    international reading is tried first and the national reading in ``default_region`` second.
    """
    cleaned = _PHONE_NOISE.sub("", raw.strip())
    if not cleaned:
        return None
    candidates: list[tuple[str, str | None]] = []
    if cleaned.startswith("+"):
        candidates.append((cleaned, None))
    else:
        if cleaned.isdigit():
            candidates.append(("+" + cleaned, None))
        candidates.append((cleaned, default_region))
    for candidate, region in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def _linked_to(kind: RecipientKind, chat_id: int | BindParameter[int]) -> ColumnElement[bool]:
    model = kind.model
    condition: ColumnElement[bool] = (model.telegram_chat_id == chat_id) & (
        model.telegram_opted_out.is_(False)
    )
    return condition


@lru_cache(maxsize=16)
def _linked_statement(kinds: tuple[RecipientKind, ...]) -> Select[Any]:
    """One UNION ALL over every kind, built once per set of kinds (``:chat_id`` bound later)."""
    chat_id = bindparam("chat_id", type_=BigInteger())
    selects = [
        select(literal(kind.name).label("kind"), kind.model.id, kind.model.name).where(
            _linked_to(kind, chat_id)
        )
        for kind in kinds
    ]
    return select(union_all(*selects).subquery())


async def linked_recipients(
    session: AsyncSession, kinds: RecipientKindRegistry, chat_id: int
) -> list[LinkedRecipient]:
    """The recipients linked to ``chat_id`` that did not opt out (one query for all kinds)."""
    rows = await session.execute(_linked_statement(tuple(kinds)), {"chat_id": chat_id})
    found = [LinkedRecipient(kind, int(rid), name) for kind, rid, name in rows]
    return sorted(found, key=lambda r: (r.kind, r.id))


async def find_linked(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int
) -> list[LinkedRecipient]:
    async with sessions() as session:
        # A single read needs no transaction: skipping BEGIN/ROLLBACK saves two round trips
        # on every update the access gate looks at.
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return await linked_recipients(session, kinds, chat_id)


async def link_phone(
    sessions: SessionFactory, kinds: RecipientKindRegistry, phone_e164: str, chat_id: int
) -> list[LinkedRecipient]:
    """Link every recipient whose stored number is exactly ``phone_e164`` to ``chat_id``.

    Clears any earlier opt-out and blocked flag. Returns the records linked (none: unknown).
    """
    linked: list[LinkedRecipient] = []
    async with sessions.begin() as session:
        for kind in kinds:
            model = kind.model
            rows = await session.execute(
                update(model)
                .where(model.sms == phone_e164)
                .values(telegram_chat_id=chat_id, telegram_opted_out=False, telegram_blocked=False)
                .returning(model.id, model.name)
            )
            linked.extend(LinkedRecipient(kind.name, int(rid), name) for rid, name in rows)
    return sorted(linked, key=lambda r: (r.kind, r.id))


async def _flag_chat(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int, **values: bool
) -> int:
    changed = 0
    async with sessions.begin() as session:
        for kind in kinds:
            model = kind.model
            rows = await session.execute(
                update(model).where(_linked_to(kind, chat_id)).values(**values).returning(model.id)
            )
            changed += len(rows.all())
    return changed


async def opt_out(sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int) -> int:
    """The person sent /stop: no more broadcasts to this chat. Returns the records changed."""
    return await _flag_chat(sessions, kinds, chat_id, telegram_opted_out=True)


async def set_blocked(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int, blocked: bool
) -> int:
    """The person blocked (or unblocked) the bot. Returns the records changed."""
    return await _flag_chat(sessions, kinds, chat_id, telegram_blocked=blocked)


_INSERT_MESSAGE = insert(Message).returning(Message.id)
_INSERT_SENDER = insert(MessageRecipient)
_INSERT_COUNTER = insert(MessageCounter)


@dataclass(frozen=True)
class InboundText:
    """A text a linked person wrote to the bot."""

    chat_id: int
    telegram_message_id: int
    text: str
    sender_name: str
    received_at: datetime


async def store_inbound(
    sessions: SessionFactory, inbound: InboundText, senders: Sequence[LinkedRecipient]
) -> int:
    """Store ``inbound`` as a received message with one sender row per linked record.

    One transaction, three statements whatever the number of records. Returns the message id.
    """
    async with sessions.begin() as session:
        message = {
            "broadcast_id": str(uuid.uuid4()),
            "channel": TELEGRAM_CHANNEL,
            "body": inbound.text,
            "direction": Direction.RECEIVED,
            "status": MessageStatus.RECEIVED,
            "sender_name": inbound.sender_name[:150],
            "total": len(senders),
            "finished_at": inbound.received_at,
            "extra": {
                "telegram_chat_id": inbound.chat_id,
                "telegram_message_id": inbound.telegram_message_id,
            },
        }
        message_id = await session.scalar(_INSERT_MESSAGE, message)
        assert message_id is not None
        if senders:
            rows = [
                {
                    "message_id": message_id,
                    "channel": TELEGRAM_CHANNEL,
                    "recipient_kind": sender.kind,
                    "recipient_id": sender.id,
                    "address": str(inbound.chat_id),
                    "status": DeliveryStatus.RECEIVED,
                    "is_sender": True,
                    "provider_id": str(inbound.telegram_message_id),
                    "sent_at": inbound.received_at,
                }
                for sender in senders
            ]
            await session.execute(_INSERT_SENDER, rows)
            counter = {"message_id": message_id, "status": DeliveryStatus.RECEIVED}
            await session.execute(_INSERT_COUNTER, {**counter, "count": len(senders)})
        return int(message_id)


async def add_recipient(
    sessions: SessionFactory,
    kinds: RecipientKindRegistry,
    kind_name: str,
    name: str,
    phone_e164: str,
    email: str | None = None,
) -> LinkedRecipient:
    """Create a recipient (``herald recipients add``): the record a person registers against."""
    model = kinds.get(kind_name).model
    async with sessions.begin() as session:
        record = model(name=name, sms=phone_e164, email=email)
        session.add(record)
        await session.flush()
        return LinkedRecipient(kind_name, int(record.id), name)
