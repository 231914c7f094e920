"""What each person asked for: the channels a recipient accepts, for all message typologies or
for one (``recipient_channel_preferences``).

No row means accepted. For a message of typology T the row for T wins over the general row (no
typology), so "no email, except invoices" is two rows. A person who refuses a whole channel
(unsubscribe link, STOP by SMS, /stop) drops their per-typology rows for it: "none" means none.
The Telegram opt-out column ``telegram_opted_out`` is kept in step with the general Telegram row,
so the bot's registration queries keep reading one column.

Every change is recorded in the audit log (``preferences.changed``) in its own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.audit import Actor, AuditAction, record
from persistence.common_queries import NotFoundError
from persistence.id_filter import id_filters
from persistence.models import (
    Message,
    MessageTypology,
    PreferenceSource,
    RecipientChannelPreference,
)
from persistence.recipient_kinds import RecipientKind, RecipientKindRegistry, RecipientRef

PREFERENCE_CHANNELS = ("email", "sms", "telegram")
P = RecipientChannelPreference


def refusal_reason(channel: str, typology_name: str | None) -> str:
    """Why a delivery is not made: the INVALID reason presend and the dispatcher report."""
    if typology_name is not None:
        return f"does not accept {channel} for {typology_name}"
    if channel == "email":
        return "unsubscribed from email"
    if channel == "sms":
        return "opted out of sms"
    return f"does not accept {channel}"


@dataclass(frozen=True)
class Preference:
    channel: str
    typology_id: int | None
    typology_name: str | None
    accepted: bool
    source: str
    updated_at: datetime


@dataclass(frozen=True)
class PreferenceChoice:
    """One choice as a caller states it: ``typology_id`` None is every typology."""

    channel: str
    typology_id: int | None
    accepted: bool


def _refused(rows: Iterable[Any], names: Mapping[int, str]) -> dict[tuple[str, str, int], str]:
    """(channel, kind, id) → reason, from rows of (kind, id, channel, typology_id, accepted):
    the typology's row wins over the general one."""
    general: dict[tuple[str, str, int], bool] = {}
    specific: dict[tuple[str, str, int], tuple[bool, int]] = {}
    for kind, rid, channel, typology_id, accepted in rows:
        key = (channel, kind, int(rid))
        if typology_id is None:
            general[key] = bool(accepted)
        else:
            specific[key] = (bool(accepted), int(typology_id))
    refused: dict[tuple[str, str, int], str] = {}
    for key in general.keys() | specific.keys():
        if key in specific:
            accepted, typology_id = specific[key]
            if not accepted:
                refused[key] = refusal_reason(key[0], names.get(typology_id, str(typology_id)))
        elif not general[key]:
            refused[key] = refusal_reason(key[0], None)
    return refused


def _applies_to(typology_id: int | None) -> Any:
    if typology_id is None:
        return P.typology_id.is_(None)
    return or_(P.typology_id.is_(None), P.typology_id == typology_id)


async def _typology_names(session: AsyncSession, typology_id: int | None) -> dict[int, str]:
    if typology_id is None:
        return {}
    name = await session.scalar(
        select(MessageTypology.name).where(MessageTypology.id == typology_id)
    )
    return {typology_id: name} if name is not None else {}


async def load_refusals(
    session: AsyncSession,
    kinds: Sequence[str],
    channels: Sequence[str],
    typology_id: int | None,
) -> dict[str, dict[RecipientRef, str]]:
    """Per channel, the recipients of ``kinds`` who refuse a message of ``typology_id``, with
    the reason: one query over the preference rows (as many as people made choices, whatever
    the size of the broadcast)."""
    wanted = [c for c in channels if c in PREFERENCE_CHANNELS]
    if not wanted or not kinds:
        return {}
    rows = await session.execute(
        select(P.recipient_kind, P.recipient_id, P.channel, P.typology_id, P.accepted).where(
            P.recipient_kind.in_(list(kinds)), P.channel.in_(wanted), _applies_to(typology_id)
        )
    )
    refused = _refused(rows, await _typology_names(session, typology_id))
    by_channel: dict[str, dict[RecipientRef, str]] = {}
    for (channel, kind, rid), reason in refused.items():
        by_channel.setdefault(channel, {})[(kind, rid)] = reason
    return by_channel


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery about to be sent, as the send-time check needs it."""

    id: int
    message_id: int
    recipient_kind: str
    recipient_id: int


async def refused_deliveries(
    session: AsyncSession,
    channel: str,
    deliveries: Sequence[PendingDelivery],
) -> dict[int, str]:
    """Delivery id → reason, for the ``deliveries`` whose recipient refuses ``channel`` now
    (for their message's typology). One query when nobody in the batch made a choice."""
    if channel not in PREFERENCE_CHANNELS or not deliveries:
        return {}
    by_kind: dict[str, list[int]] = {}
    for d in deliveries:
        by_kind.setdefault(d.recipient_kind, []).append(d.recipient_id)
    dialect = session.get_bind().dialect.name
    rows: list[Any] = []
    for kind, ids in by_kind.items():
        for where in id_filters(P.recipient_id, sorted(set(ids)), dialect):
            found = await session.execute(
                select(
                    P.recipient_kind, P.recipient_id, P.channel, P.typology_id, P.accepted
                ).where(P.recipient_kind == kind, P.channel == channel, where)
            )
            rows.extend(found)
    if not rows:
        return {}
    message_ids = sorted({d.message_id for d in deliveries})
    typologies: dict[int, int | None] = {
        int(i): t
        for i, t in await session.execute(
            select(Message.id, Message.typology_id).where(Message.id.in_(message_ids))
        )
    }
    wanted = {t for t in typologies.values() if t is not None}
    names: dict[int, str] = {}
    if wanted:
        found_names = await session.execute(
            select(MessageTypology.id, MessageTypology.name).where(MessageTypology.id.in_(wanted))
        )
        names = {int(i): n for i, n in found_names}
    answer: dict[int, str] = {}
    for typology_id in set(typologies.values()):
        applicable = [r for r in rows if r[3] is None or r[3] == typology_id]
        refused = _refused(applicable, names)
        for d in deliveries:
            if typologies.get(d.message_id) != typology_id:
                continue
            reason = refused.get((channel, d.recipient_kind, d.recipient_id))
            if reason is not None:
                answer[d.id] = reason
    return answer


async def list_preferences(session: AsyncSession, kind: str, rid: int) -> list[Preference]:
    """A recipient's choices: general rows first, then per typology, by channel."""
    rows = await session.execute(
        select(P, MessageTypology.name)
        .outerjoin(MessageTypology, MessageTypology.id == P.typology_id)
        .where(P.recipient_kind == kind, P.recipient_id == rid)
        .order_by(P.channel, P.typology_id.is_not(None), P.typology_id)
    )
    return [
        Preference(p.channel, p.typology_id, name, p.accepted, p.source, p.updated_at)
        for p, name in rows
    ]


async def recipient_name(session: AsyncSession, kind: RecipientKind, rid: int) -> str | None:
    """The name of ``kind`` ``rid`` whoever owns it (an unsubscribe token is the permission)."""
    name: str | None = await session.scalar(select(kind.model.name).where(kind.model.id == rid))
    return name


async def refuses(session: AsyncSession, kind: str, rid: int, channel: str) -> bool:
    """Whether ``kind`` ``rid`` refuses ``channel`` for every typology."""
    accepted = await session.scalar(
        select(P.accepted).where(
            P.recipient_kind == kind,
            P.recipient_id == rid,
            P.channel == channel,
            P.typology_id.is_(None),
        )
    )
    return accepted is False


async def _sync_telegram_column(
    session: AsyncSession, kind: RecipientKind, rid: int, opted_out: bool
) -> None:
    model = kind.model
    await session.execute(update(model).where(model.id == rid).values(telegram_opted_out=opted_out))


async def _upsert(
    session: AsyncSession,
    kind: str,
    rid: int,
    choice: PreferenceChoice,
    source: PreferenceSource,
    now: datetime,
) -> bool:
    """Write one choice; whether anything changed."""
    typology = (
        P.typology_id.is_(None)
        if choice.typology_id is None
        else P.typology_id == choice.typology_id
    )
    existing = await session.scalar(
        select(P).where(
            P.recipient_kind == kind, P.recipient_id == rid, P.channel == choice.channel, typology
        )
    )
    synced = source is PreferenceSource.SKEBBY
    if existing is None:
        session.add(
            P(
                recipient_kind=kind,
                recipient_id=rid,
                channel=choice.channel,
                typology_id=choice.typology_id,
                accepted=choice.accepted,
                source=source.value,
                provider_synced=synced,
                updated_at=now,
            )
        )
        await session.flush()
        return True
    if existing.accepted == choice.accepted:
        return False
    existing.accepted = choice.accepted
    existing.source = source.value
    existing.provider_synced = synced
    existing.updated_at = now
    await session.flush()
    return True


class UnknownTypologyError(NotFoundError):
    """A choice names a message typology that does not exist."""

    def __init__(self, typology_id: int) -> None:
        super().__init__(f"message typology {typology_id}")
        self.typology_id = typology_id


async def check_typology(session: AsyncSession, typology_id: int | None) -> None:
    if typology_id is not None and (
        await session.scalar(select(MessageTypology.id).where(MessageTypology.id == typology_id))
        is None
    ):
        raise UnknownTypologyError(typology_id)


async def set_channel(
    session: AsyncSession,
    kind: RecipientKind,
    rid: int,
    choice: PreferenceChoice,
    *,
    source: PreferenceSource,
    actor: Actor,
    via: str,
    now: datetime | None = None,
) -> bool:
    """Record one choice of ``kind`` ``rid`` (audited when it changes anything); whether it did.

    A person refusing a whole channel also drops their per-typology rows for it."""
    when = now or datetime.now(UTC)
    if choice.channel not in PREFERENCE_CHANNELS:
        raise ValueError(f"unknown channel {choice.channel!r}")
    await check_typology(session, choice.typology_id)
    changed = await _upsert(session, kind.name, rid, choice, source, when)
    if choice.typology_id is None and not choice.accepted and source is PreferenceSource.PERSON:
        dropped = await session.execute(
            delete(P)
            .where(
                P.recipient_kind == kind.name,
                P.recipient_id == rid,
                P.channel == choice.channel,
                P.typology_id.is_not(None),
            )
            .returning(P.id)
        )
        changed = bool(dropped.all()) or changed
    if choice.channel == "telegram" and choice.typology_id is None:
        await _sync_telegram_column(session, kind, rid, not choice.accepted)
    if changed:
        await record(
            session,
            actor,
            AuditAction.PREFERENCES_CHANGED,
            kind.name,
            [rid],
            {
                "via": via,
                "channel": choice.channel,
                "typology_id": choice.typology_id,
                "accepted": choice.accepted,
            },
            now=when,
        )
    return changed


async def replace_preferences(
    session: AsyncSession,
    kind: RecipientKind,
    rid: int,
    choices: Sequence[PreferenceChoice],
    *,
    actor: Actor,
    via: str,
    source: PreferenceSource = PreferenceSource.STAFF,
    now: datetime | None = None,
) -> bool:
    """Make ``choices`` the recipient's whole set of choices (a PUT); audited once if anything
    changed. The caller checked that the recipient exists and is visible."""
    when = now or datetime.now(UTC)
    for choice in choices:
        if choice.channel not in PREFERENCE_CHANNELS:
            raise ValueError(f"unknown channel {choice.channel!r}")
        await check_typology(session, choice.typology_id)
    before = {
        (p.channel, p.typology_id): p.accepted
        for p in await list_preferences(session, kind.name, rid)
    }
    after = {(c.channel, c.typology_id): c.accepted for c in choices}
    if before == after:
        return False
    gone = [key for key in before if key not in after]
    for channel, typology_id in gone:
        typology = P.typology_id.is_(None) if typology_id is None else P.typology_id == typology_id
        await session.execute(
            delete(P).where(
                P.recipient_kind == kind.name,
                P.recipient_id == rid,
                P.channel == channel,
                typology,
            )
        )
    for choice in choices:
        await _upsert(session, kind.name, rid, choice, source, when)
    await _sync_telegram_column(session, kind, rid, after.get(("telegram", None)) is False)
    await record(
        session,
        actor,
        AuditAction.PREFERENCES_CHANGED,
        kind.name,
        [rid],
        {
            "via": via,
            "preferences": [
                {"channel": c, "typology_id": t, "accepted": a}
                for (c, t), a in sorted(
                    after.items(), key=lambda item: (item[0][0], item[0][1] or 0)
                )
            ],
        },
        now=when,
    )
    return True


async def forget_preferences(session: AsyncSession, kind: str, ids: Sequence[int]) -> None:
    """The recipients are deleted: their choices go with them."""
    if ids:
        await session.execute(
            delete(P).where(P.recipient_kind == kind, P.recipient_id.in_(list(ids)))
        )


async def mirror_telegram(
    session: AsyncSession,
    kind: str,
    ids: Sequence[int],
    accepted: bool,
    now: datetime,
    source: PreferenceSource = PreferenceSource.PERSON,
) -> None:
    """/stop and /start (audited by the bot's own statements): the general Telegram rows of
    ``ids`` follow the column the bot just set. /start only lifts an existing refusal."""
    if not ids:
        return
    if accepted:
        await session.execute(
            update(P)
            .where(
                P.recipient_kind == kind,
                P.recipient_id.in_(list(ids)),
                P.channel == "telegram",
                P.typology_id.is_(None),
                P.accepted.is_(False),
            )
            .values(accepted=True, source=source.value, updated_at=now)
        )
        return
    for rid in ids:
        choice = PreferenceChoice("telegram", None, False)
        await _upsert(session, kind, rid, choice, source, now)
        await session.execute(
            delete(P).where(
                P.recipient_kind == kind,
                P.recipient_id == rid,
                P.channel == "telegram",
                P.typology_id.is_not(None),
            )
        )


# --- SMS: numbers, STOP and Skebby's blacklist -------------------------------------------------


async def recipients_with_number(
    session: AsyncSession, kinds: RecipientKindRegistry, number: str
) -> list[RecipientRef]:
    """Every record (of every kind) whose stored E.164 number is exactly ``number``."""
    found: list[RecipientRef] = []
    for kind in kinds:
        rows = await session.execute(
            select(kind.model.id).where(kind.model.sms == number).order_by(kind.model.id)
        )
        found += [(kind.name, int(rid)) for (rid,) in rows]
    return found


async def opt_out_number(
    session: AsyncSession,
    kinds: RecipientKindRegistry,
    number: str,
    *,
    source: PreferenceSource,
    actor: Actor | None,
    via: str,
    now: datetime | None = None,
) -> list[RecipientRef]:
    """Everyone with ``number`` refuses SMS from now on; the records that changed. The audit
    log names ``actor``, or (None) each person themselves."""
    changed: list[RecipientRef] = []
    for kind_name, rid in await recipients_with_number(session, kinds, number):
        if await set_channel(
            session,
            kinds.get(kind_name),
            rid,
            PreferenceChoice("sms", None, False),
            source=source,
            actor=actor or Actor.person(kind_name, rid),
            via=via,
            now=now,
        ):
            changed.append((kind_name, rid))
    return changed


@dataclass(frozen=True)
class UnsyncedSms:
    """A general SMS choice Skebby's blacklist does not reflect yet."""

    preference_ids: tuple[int, ...]
    number: str
    accepted: bool


async def unsynced_sms(session: AsyncSession, kinds: RecipientKindRegistry) -> list[UnsyncedSms]:
    """The SMS opt-outs (and opt-ins after one) not yet pushed to Skebby, by number. A number
    shared by several records stays blacklisted while any of them refuses SMS."""
    by_number: dict[str, list[tuple[int, bool]]] = {}
    refusing: set[str] = set()
    for kind in kinds:
        m = kind.model
        rows = await session.execute(
            select(P.id, P.accepted, P.provider_synced, m.sms)
            .join(m, and_(m.id == P.recipient_id, P.recipient_kind == kind.name))
            .where(P.channel == "sms", P.typology_id.is_(None), m.sms.is_not(None))
        )
        for pid, accepted, synced, number in rows:
            if not accepted:
                refusing.add(number)
            if not synced:
                by_number.setdefault(number, []).append((int(pid), bool(accepted)))
    return [
        UnsyncedSms(tuple(pid for pid, _ in entries), number, number not in refusing)
        for number, entries in sorted(by_number.items())
    ]


async def mark_synced(session: AsyncSession, preference_ids: Sequence[int]) -> None:
    if preference_ids:
        await session.execute(
            update(P).where(P.id.in_(list(preference_ids))).values(provider_synced=True)
        )


async def refusing_numbers(session: AsyncSession, kinds: RecipientKindRegistry) -> set[str]:
    """The numbers of every record that refuses SMS (general row)."""
    numbers: set[str] = set()
    for kind in kinds:
        m = kind.model
        rows = await session.execute(
            select(m.sms)
            .join(P, and_(m.id == P.recipient_id, P.recipient_kind == kind.name))
            .where(
                P.channel == "sms",
                P.typology_id.is_(None),
                P.accepted.is_(False),
                m.sms.is_not(None),
            )
        )
        numbers.update(number for (number,) in rows)
    return numbers
