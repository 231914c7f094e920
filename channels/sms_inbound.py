"""What people answer by SMS, and Skebby's blacklist kept in step with Herald's SMS opt-outs.

- :func:`poll_received_sms` fetches Skebby's new received SMS and stores each in the threads of
  the people with the sender's number (``persistence.sms_inbound``). An SMS whose first word is
  a stop keyword (SMS_STOP_KEYWORDS) also opts them out of SMS, and the number goes to Skebby's
  blacklist at once.
- :func:`sync_blacklist` pushes Herald's SMS choices not yet on Skebby (an opt-out adds the
  number, lifting one removes it) and pulls Skebby's blacklist into opt-outs (origin ``skebby``).
  Both directions are idempotent: a second run with nothing changed writes nothing on either
  side, and a number already opted out costs no call.

SQL-free: the statements are in ``persistence.preferences`` and ``persistence.sms_inbound``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from channels.clock import Clock
from channels.skebby.wire import parse_delivery_date
from channels.skebby_gateway import SkebbyGateway, SkebbyNotFoundError
from persistence.audit import Actor
from persistence.database import SessionFactory
from persistence.models import PreferenceSource
from persistence.phones import normalize_phone
from persistence.preferences import (
    mark_synced,
    opt_out_number,
    refusing_numbers,
    unsynced_sms,
)
from persistence.recipient_kinds import RecipientKindRegistry
from persistence.sms_inbound import ReceivedSms, store_received_sms

log = logging.getLogger(__name__)

RECEIVED_BATCH = 100  # Skebby's most per call
BLACKLIST_PAGE = 100


def is_stop(text: str, keywords: Collection[str]) -> bool:
    """The SMS asks to stop: its first word (case and punctuation aside) is a stop keyword."""
    words = text.split()
    return bool(words) and words[0].strip(".,;:!?").upper() in keywords


@dataclass
class ReceivedReport:
    stored: int = 0
    skipped: int = 0  # from numbers no recipient has, or already stored
    stopped: list[str] = field(default_factory=list)  # numbers that opted out


async def poll_received_sms(
    sessions: SessionFactory,
    kinds: RecipientKindRegistry,
    gateway: SkebbyGateway,
    clock: Clock,
    *,
    stop_keywords: Collection[str],
    region: str,
) -> ReceivedReport:
    """Fetch and store every new received SMS (Skebby hands each out once)."""
    report = ReceivedReport()
    while True:
        batch = await gateway.new_received_sms(limit=RECEIVED_BATCH)
        for item in batch:
            await _receive(sessions, kinds, item, clock, stop_keywords, region, report)
        if len(batch) < RECEIVED_BATCH:
            break
    if report.stopped:
        await push_blacklist(sessions, kinds, gateway)
    return report


async def _receive(
    sessions: SessionFactory,
    kinds: RecipientKindRegistry,
    item: dict[str, object],
    clock: Clock,
    stop_keywords: Collection[str],
    region: str,
    report: ReceivedReport,
) -> None:
    number = normalize_phone(str(item.get("sender") or ""), region)
    if number is None:
        report.skipped += 1
        return
    text = str(item.get("message") or "")
    when: datetime = parse_delivery_date(item.get("sms_date")) or clock()
    sms = ReceivedSms(
        str(item.get("id_message") or ""), number, text, when, str(item.get("id_sim") or "")
    )
    async with sessions.begin() as session:
        message_id, _ = await store_received_sms(session, kinds, sms)
        if message_id is None:  # nobody has that number, or it was stored before
            report.skipped += 1
            return
        report.stored += 1
        if is_stop(text, stop_keywords):
            await opt_out_number(
                session,
                kinds,
                number,
                source=PreferenceSource.PERSON,
                actor=None,
                via="sms stop",
                now=clock(),
            )
            report.stopped.append(number)


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)  # numbers put on Skebby's blacklist
    removed: list[str] = field(default_factory=list)  # numbers taken off it
    pulled: list[str] = field(default_factory=list)  # numbers Herald opted out from Skebby's list


async def push_blacklist(
    sessions: SessionFactory, kinds: RecipientKindRegistry, gateway: SkebbyGateway
) -> SyncReport:
    """Herald's SMS choices that Skebby does not reflect yet, sent to its blacklist."""
    report = SyncReport()
    async with sessions() as session:
        pending = await unsynced_sms(session, kinds)
    if not pending:
        return report
    add = [p for p in pending if not p.accepted]
    lift = [p for p in pending if p.accepted]
    if add:
        await gateway.blacklist_numbers([p.number for p in add])
        report.added = [p.number for p in add]
    for item in lift:
        with contextlib.suppress(SkebbyNotFoundError):  # not on the list: as wanted
            await gateway.unblacklist_number(item.number)
        report.removed.append(item.number)
    async with sessions.begin() as session:
        await mark_synced(session, [i for p in pending for i in p.preference_ids])
    return report


async def _skebby_blacklist(gateway: SkebbyGateway) -> set[str]:
    numbers: set[str] = set()
    page = 1
    while True:
        listing = await gateway.list_blacklist(page_number=page, page_size=BLACKLIST_PAGE)
        content = listing.get("content") or []
        numbers.update(str(entry["number"]) for entry in content if entry.get("number"))
        if page >= int(listing.get("totalPages") or 0) or not content:
            return numbers
        page += 1


async def sync_blacklist(
    sessions: SessionFactory,
    kinds: RecipientKindRegistry,
    gateway: SkebbyGateway,
    clock: Clock,
    *,
    region: str,
) -> SyncReport:
    """Push first (so a number Herald just re-allowed is not pulled back), then pull."""
    report = await push_blacklist(sessions, kinds, gateway)
    listed = await _skebby_blacklist(gateway)
    async with sessions() as session:
        known = await refusing_numbers(session, kinds)
    fresh = sorted(
        n for n in (normalize_phone(raw, region) for raw in listed) if n and n not in known
    )
    for number in fresh:
        async with sessions.begin() as session:
            changed = await opt_out_number(
                session,
                kinds,
                number,
                source=PreferenceSource.SKEBBY,
                actor=Actor.skebby(),
                via="skebby blacklist",
                now=clock(),
            )
        if changed:
            report.pulled.append(number)
    return report
