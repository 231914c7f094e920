"""Linking Telegram chats to recipients, and storing what recipients write to the bot.

Every query looks at all recipient kinds of the registry, so a person who is both a customer and an
external subject is linked (and later reached) as both. Phone numbers are matched exactly on the
stored E.164 form; nothing here guesses with suffixes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    TextClause,
    bindparam,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import webhook_queries
from persistence.audit import Actor, AuditAction, record
from persistence.database import SessionFactory
from persistence.driver_sql import autocommit, driver_statement, engine_of
from persistence.models import (
    DeliveryStatus,
    Direction,
    Message,
    MessageCounter,
    MessageRecipient,
    MessageStatus,
)
from persistence.preferences import mirror_telegram
from persistence.recipient_kinds import RecipientKind, RecipientKindRegistry

TELEGRAM_CHANNEL = "telegram"


@dataclass(frozen=True)
class LinkedRecipient:
    """A recipient record linked to a Telegram chat."""

    kind: str
    id: int
    name: str


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


@lru_cache(maxsize=16)
def _linked_text(kinds: tuple[RecipientKind, ...]) -> TextClause:
    """``_linked_statement`` as prebuilt text: no cache key to generate on every update."""
    selects: list[str] = []
    names: list[BindParameter[str]] = []
    for n, kind in enumerate(kinds):
        table: Table = kind.model.__table__
        selects.append(
            f"SELECT :kind_{n} AS kind, id, name FROM {table.name} "  # noqa: S608 - table names
            "WHERE telegram_chat_id = :chat_id AND NOT telegram_opted_out"
        )
        names.append(bindparam(f"kind_{n}", kind.name, type_=String()))
    statement = text(" UNION ALL ".join(selects)).bindparams(
        *names, bindparam("chat_id", type_=BigInteger())
    )
    return statement


async def find_linked(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int
) -> list[LinkedRecipient]:
    """``linked_recipients`` on an autocommit connection: one round trip, no transaction."""
    statement = _linked_text(tuple(kinds))
    engine = engine_of(sessions)
    rows: Any
    if engine.dialect.name == "postgresql":
        rows = await driver_statement(statement, engine.dialect).fetch(engine, {"chat_id": chat_id})
    else:
        async with engine.connect() as connection:
            await autocommit(connection)
            rows = (await connection.execute(statement, {"chat_id": chat_id})).all()
    found = [LinkedRecipient(kind, int(rid), name) for kind, rid, name in rows]
    return sorted(found, key=lambda r: (r.kind, r.id))


async def _update_returning_linked(
    sessions: SessionFactory,
    kinds: RecipientKindRegistry,
    where: Callable[[Any], ColumnElement[bool]],
    telegram: str,
    **values: Any,
) -> list[LinkedRecipient]:
    """Set ``values`` on every kind's records matching ``where(model)``; the records changed.

    The person asked for it through the bot: the audit log says so (``telegram`` names what).
    """
    changed: list[LinkedRecipient] = []
    async with sessions.begin() as session:
        for kind in kinds:
            model = kind.model
            rows = await session.execute(
                update(model).where(where(model)).values(**values).returning(model.id, model.name)
            )
            found = [LinkedRecipient(kind.name, int(rid), name) for rid, name in rows]
            await _audit_preferences(session, kind.name, [r.id for r in found], telegram)
            await _mirror(session, kind.name, [r.id for r in found], values)
            changed.extend(found)
    return sorted(changed, key=lambda r: (r.kind, r.id))


async def link_phone(
    sessions: SessionFactory, kinds: RecipientKindRegistry, phone_e164: str, chat_id: int
) -> list[LinkedRecipient]:
    """Link every recipient whose stored number is exactly ``phone_e164`` to ``chat_id``.

    Clears any earlier opt-out and blocked flag. Returns the records linked (none: unknown).
    """
    return await _update_returning_linked(
        sessions,
        kinds,
        lambda model: model.sms == phone_e164,
        "linked",
        telegram_chat_id=chat_id,
        telegram_opted_out=False,
        telegram_blocked=False,
    )


async def _flag_chat(
    sessions: SessionFactory,
    kinds: RecipientKindRegistry,
    chat_id: int,
    telegram: str | None = None,
    **values: bool,
) -> int:
    """Set ``values`` on the records linked to ``chat_id``; with ``telegram``, the person
    chose it, and the audit log records it."""
    changed = 0
    async with sessions.begin() as session:
        for kind in kinds:
            model = kind.model
            rows = await session.execute(
                update(model).where(_linked_to(kind, chat_id)).values(**values).returning(model.id)
            )
            ids = [int(rid) for (rid,) in rows]
            if telegram is not None:
                await _audit_preferences(session, kind.name, ids, telegram)
            await _mirror(session, kind.name, ids, values)
            changed += len(ids)
    return changed


async def _mirror(
    session: AsyncSession, kind: str, ids: Sequence[int], values: dict[str, Any]
) -> None:
    """The channel preferences follow the bot's Telegram opt-out column."""
    if "telegram_opted_out" in values:
        accepted = not values["telegram_opted_out"]
        await mirror_telegram(session, kind, ids, accepted, datetime.now(UTC))


async def _audit_preferences(
    session: AsyncSession, kind: str, ids: Sequence[int], telegram: str
) -> None:
    if ids:
        await record(
            session,
            Actor.bot(),
            AuditAction.PREFERENCES_CHANGED,
            kind,
            ids,
            {"telegram": telegram},
        )


async def flag_blocked_chats(
    session: AsyncSession, kinds: RecipientKindRegistry, chat_ids: Sequence[int]
) -> None:
    """Telegram refused deliveries to these chats (blocked, deactivated): flag their records."""
    if not chat_ids:
        return
    for kind in kinds:
        await session.execute(
            update(kind.model)
            .where(kind.model.telegram_chat_id.in_(list(chat_ids)))
            .values(telegram_blocked=True)
        )


async def move_chat(
    session: AsyncSession, kinds: RecipientKindRegistry, old_chat_id: int, new_chat_id: int
) -> None:
    """A group became a supergroup (Telegram's ChatMigrated): its records follow the new id."""
    for kind in kinds:
        await session.execute(
            update(kind.model)
            .where(kind.model.telegram_chat_id == old_chat_id)
            .values(telegram_chat_id=new_chat_id)
        )


async def opt_out(sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int) -> int:
    """The person sent /stop: no more broadcasts to this chat. Returns the records changed."""
    return await _flag_chat(sessions, kinds, chat_id, "stopped", telegram_opted_out=True)


async def has_opted_out(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int
) -> bool:
    """Whether this chat is linked to records that sent /stop (and so are not "linked" now)."""
    async with sessions() as session:
        for kind in kinds:
            model = kind.model
            found = await session.execute(
                select(model.id)
                .where(model.telegram_chat_id == chat_id, model.telegram_opted_out.is_(True))
                .limit(1)
            )
            if found.first() is not None:
                return True
    return False


async def opt_in(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int
) -> list[LinkedRecipient]:
    """/start after /stop: this chat's opted-out records receive messages again."""
    return await _update_returning_linked(
        sessions,
        kinds,
        lambda model: (model.telegram_chat_id == chat_id) & model.telegram_opted_out.is_(True),
        "started",
        telegram_opted_out=False,
        telegram_blocked=False,
    )


async def set_blocked(
    sessions: SessionFactory, kinds: RecipientKindRegistry, chat_id: int, blocked: bool
) -> int:
    """The person blocked (or unblocked) the bot. Returns the records changed."""
    return await _flag_chat(sessions, kinds, chat_id, telegram_blocked=blocked)


@dataclass(frozen=True)
class InboundText:
    """A text a linked person wrote to the bot."""

    chat_id: int
    telegram_message_id: int
    text: str
    sender_name: str
    received_at: datetime


_MESSAGES: Final = cast(Table, Message.__table__)
_RECIPIENTS: Final = cast(Table, MessageRecipient.__table__)
_COUNTERS: Final = cast(Table, MessageCounter.__table__)
# Core, not the ORM's bulk paths: the column defaults apply all the same.
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_INSERT_SENDER = insert(_RECIPIENTS)
_INSERT_COUNTER = insert(_COUNTERS)


def _scalar_defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """The Python-side scalar defaults of ``table``'s columns not in ``given`` (what Core adds)."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None or not default.is_scalar:
            continue
        defaults[column.name] = getattr(default, "arg", None)
    return defaults


_MESSAGE_GIVEN: Final = (
    "broadcast_id",
    "channel",
    "body",
    "direction",
    "status",
    "sender_name",
    "total",
    "finished_at",
    "extra",
)
_SENDER_GIVEN: Final = (
    "message_id",
    "channel",
    "recipient_kind",
    "recipient_id",
    "address",
    "status",
    "is_sender",
    "provider_id",
    "sent_at",
)
_MESSAGE_DEFAULTS: Final = {
    f"m_{name}": value for name, value in _scalar_defaults(_MESSAGES, _MESSAGE_GIVEN).items()
}
_SENDER_DEFAULTS: Final = {
    f"r_{name}": value for name, value in _scalar_defaults(_RECIPIENTS, _SENDER_GIVEN).items()
}


def _postgres_store_statement() -> TextClause:
    """One statement for the whole store on PostgreSQL: data-modifying CTEs are atomic together.

    The message is inserted RETURNING its id, the sender rows come from two arrays through
    ``unnest`` and the counter row is added when there are senders; autocommit, one round trip.
    """
    message_columns = [*_MESSAGE_GIVEN, *(name[2:] for name in _MESSAGE_DEFAULTS)]
    # message_id, recipient_kind and recipient_id come from the CTE and the arrays.
    sender_columns = [
        name
        for name in (*_SENDER_GIVEN, *(n[2:] for n in _SENDER_DEFAULTS))
        if name not in ("message_id", "recipient_kind", "recipient_id")
    ]
    sql = (
        f"WITH m AS (INSERT INTO {_MESSAGES.name} ({', '.join(message_columns)}) "  # noqa: S608
        f"VALUES ({', '.join(f':m_{name}' for name in message_columns)}) RETURNING id), "
        f"s AS (INSERT INTO {_RECIPIENTS.name} "
        f"(message_id, recipient_kind, recipient_id, {', '.join(sender_columns)}) "
        f"SELECT m.id, u.kind, u.id, {', '.join(f':r_{name}' for name in sender_columns)} "
        "FROM m, unnest(:kinds, :ids) AS u(kind, id)), "
        f"c AS (INSERT INTO {_COUNTERS.name} (message_id, status, count) "
        "SELECT m.id, :r_status, :count FROM m WHERE :count > 0 "
        "ON CONFLICT (message_id, status) DO UPDATE "
        f"SET count = {_COUNTERS.name}.count + excluded.count) "
        "SELECT id FROM m"
    )
    return text(sql).bindparams(
        *(bindparam(f"m_{name}", type_=_MESSAGES.c[name].type) for name in message_columns),
        *(bindparam(f"r_{name}", type_=_RECIPIENTS.c[name].type) for name in sender_columns),
        bindparam("kinds", type_=ARRAY(String())),
        bindparam("ids", type_=ARRAY(Integer())),
        bindparam("count", type_=BigInteger()),
    )


_STORE_POSTGRES: Final = _postgres_store_statement()


async def store_inbound(
    sessions: SessionFactory, inbound: InboundText, senders: Sequence[LinkedRecipient]
) -> int:
    """Store ``inbound`` as a received message with one sender row per linked record.

    PostgreSQL: one autocommit statement. SQLite: one transaction of three statements. Either way
    the number of statements does not depend on the number of records. Returns the message id.
    """
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
    sender = {
        "channel": TELEGRAM_CHANNEL,
        "address": str(inbound.chat_id),
        "status": DeliveryStatus.RECEIVED,
        "is_sender": True,
        "provider_id": str(inbound.telegram_message_id),
        "sent_at": inbound.received_at,
    }
    engine = engine_of(sessions)
    if engine.dialect.name == "postgresql":
        params: dict[str, Any] = {f"m_{name}": value for name, value in message.items()}
        params.update(_MESSAGE_DEFAULTS)
        params.update({f"r_{name}": value for name, value in sender.items()})
        params.update(_SENDER_DEFAULTS)
        params["kinds"] = [record.kind for record in senders]
        params["ids"] = [record.id for record in senders]
        params["count"] = len(senders)
        rows = await driver_statement(_STORE_POSTGRES, engine.dialect).fetch(engine, params)
        message_id = int(rows[0][0])
        await _received_events(sessions, message_id, senders, inbound.received_at)
        return message_id
    async with engine.begin() as connection:
        message_id = (await connection.execute(_INSERT_MESSAGE, message)).scalar_one()
        if senders:
            rows = [
                {
                    **sender,
                    "message_id": message_id,
                    "recipient_kind": record.kind,
                    "recipient_id": record.id,
                }
                for record in senders
            ]
            await connection.execute(_INSERT_SENDER, rows)
            counter = {"message_id": message_id, "status": DeliveryStatus.RECEIVED}
            await connection.execute(_INSERT_COUNTER, {**counter, "count": len(senders)})
    await _received_events(sessions, int(message_id), senders, inbound.received_at)
    return int(message_id)


async def _received_events(
    sessions: SessionFactory,
    message_id: int,
    senders: Sequence[LinkedRecipient],
    received_at: datetime,
) -> None:
    """``message.received`` webhook events, right after the message is stored (the hot path
    keeps its one statement; this is one small read when no endpoint listens)."""
    async with sessions.begin() as session:
        if subs := await webhook_queries.subscriptions(session):
            refs = [(record.kind, record.id) for record in senders]
            await webhook_queries.add_received_events(session, subs, message_id, refs, received_at)
