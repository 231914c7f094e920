"""Answers by SMS in the people's threads, STOP by SMS, and Skebby's blacklist in step."""

from __future__ import annotations

from sqlalchemy import select

from channels.clock import utc_now
from channels.composer import Composer
from channels.composition import ComposerConfig, ComposeRequest
from channels.skebby_gateway import SkebbyGateway
from channels.sms_inbound import ReceivedReport, SyncReport, poll_received_sms, sync_blacklist
from persistence.audit import Actor, AuditAction
from persistence.common_queries import PageRequest
from persistence.inbox_queries import thread
from persistence.models import AuditEvent, MessageRecipient, PreferenceSource, User
from persistence.preferences import PreferenceChoice, list_preferences, set_channel
from persistence.recipient_kinds import default_registry
from persistence.sms_inbound import ReceivedSms, store_received_sms
from sandbox.skebby_simulator import SkebbySimulator
from tests.conftest import Database
from tests.factories import make_customers, make_subject, make_user

KINDS = default_registry()
ANNA = "+393471234567"
BRUNO = "+393471234568"
STRANGER = "+393479999999"
KEYWORDS = frozenset({"STOP", "ANNULLA", "CANCELLA", "BASTA"})


async def _poll(db: Database, gateway: SkebbyGateway) -> ReceivedReport:
    return await poll_received_sms(
        db.sessions, KINDS, gateway, utc_now, stop_keywords=KEYWORDS, region="IT"
    )


async def _sync(db: Database, gateway: SkebbyGateway) -> SyncReport:
    return await sync_blacklist(db.sessions, KINDS, gateway, utc_now, region="IT")


async def _sms_choices(db: Database, kind: str, rid: int) -> list[tuple[bool, str]]:
    async with db.sessions() as session:
        return [
            (p.accepted, p.source)
            for p in await list_preferences(session, kind, rid)
            if p.channel == "sms" and p.typology_id is None
        ]


async def _thread_texts(db: Database, user: User, kind: str, rid: int) -> list[str]:
    async with db.sessions() as session:
        found = await thread(session, KINDS, user, kind, rid, PageRequest(limit=50, offset=0))
    return [entry.message.body for entry in found.entries.items]


async def test_an_answer_lands_in_the_thread_of_everyone_with_that_number(
    db: Database, skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """An SMS from a known number is a received message in each matching record's thread, seen
    by that record's owner; one from an unknown number is not stored."""
    alice = await make_user(db.sessions, superuser=False, name="alice")
    (customer,) = await make_customers(db.sessions, 1, sms=ANNA, owner_id=alice.id)
    subject = await make_subject(db.sessions, sms=ANNA)
    skebby_sim.receive_sms(ANNA, "Grazie, ricevuto")
    skebby_sim.receive_sms(STRANGER, "Chi siete?")
    await _poll(db, skebby_gateway)
    assert await _thread_texts(db, alice, "customer", customer.id) == ["Grazie, ricevuto"]
    admin = await make_user(db.sessions, superuser=True)
    assert await _thread_texts(db, admin, "external_subject", subject.id) == ["Grazie, ricevuto"]
    async with db.sessions() as session:
        rows = list((await session.execute(select(MessageRecipient))).scalars())
    assert sorted((r.recipient_kind, r.channel, r.status, r.is_sender) for r in rows) == [
        ("customer", "sms", "received", True),
        ("external_subject", "sms", "received", True),
    ]


async def test_the_same_sms_is_stored_once(db: Database) -> None:
    """Storing an SMS with a Skebby id already stored stores nothing more."""
    (customer,) = await make_customers(db.sessions, 1, sms=ANNA)
    sms = ReceivedSms("41", ANNA, "Ok", utc_now())
    for _ in range(2):
        async with db.sessions.begin() as session:
            await store_received_sms(session, KINDS, sms)
    admin = await make_user(db.sessions, superuser=True)
    assert await _thread_texts(db, admin, "customer", customer.id) == ["Ok"]


async def test_stop_by_sms_opts_out_and_blacklists_the_number(
    db: Database, skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """ "annulla" from a person opts them out of SMS (presend says so, the audit log names
    them), and Herald puts the number on Skebby's blacklist itself."""
    skebby_sim.stop_sms_service = False  # Skebby does not blacklist by itself: Herald must
    (customer,) = await make_customers(db.sessions, 1, sms=ANNA)
    skebby_sim.receive_sms(ANNA, "annulla grazie")
    skebby_sim.receive_sms(BRUNO, "stop")  # nobody has this number: nothing to opt out
    await _poll(db, skebby_gateway)
    assert await _sms_choices(db, "customer", customer.id) == [(False, "person")]
    assert skebby_sim.is_blacklisted(ANNA) and not skebby_sim.is_blacklisted(BRUNO)
    admin = await make_user(db.sessions, superuser=True)
    composer = Composer(db.sessions, KINDS, ComposerConfig(default_region="IT"), utc_now)
    plan = await composer.presend(
        admin,
        ComposeRequest(channels=["sms"], body="Offerta", recipients={"customer": [customer.id]}),
    )
    (problem,) = plan.channels[0].classification.invalid
    assert problem.reason == "opted out of sms"
    async with db.sessions() as session:
        (event,) = list(
            (
                await session.execute(
                    select(AuditEvent).where(
                        AuditEvent.action == AuditAction.PREFERENCES_CHANGED.value
                    )
                )
            ).scalars()
        )
    assert (event.actor_kind, event.actor_label, event.detail["via"]) == (
        "person",
        f"customer {customer.id}",
        "sms stop",
    )


async def test_blacklist_sync_goes_both_ways_and_repeats_nothing(
    db: Database, skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """Herald's SMS opt-out is pushed to Skebby, Skebby's own entry becomes a Herald opt-out;
    a second sync makes no write call and changes nothing."""
    anna, bruno = await make_customers(db.sessions, 2, sms=lambda i: [ANNA, BRUNO][i])
    async with db.sessions.begin() as session:
        await set_channel(
            session,
            KINDS.get("customer"),
            anna.id,
            PreferenceChoice("sms", None, False),
            source=PreferenceSource.STAFF,
            actor=Actor.bot(),
            via="test",
        )
    skebby_sim.blacklist_number(BRUNO, origin="WEB")
    first = await _sync(db, skebby_gateway)
    assert skebby_sim.is_blacklisted(ANNA)
    assert await _sms_choices(db, "customer", bruno.id) == [(False, "skebby")]
    assert first.added == [ANNA] and first.pulled == [BRUNO]
    writes_before = sum(n for key, n in skebby_sim.requests.items() if not key.startswith("GET"))
    second = await _sync(db, skebby_gateway)
    writes_after = sum(n for key, n in skebby_sim.requests.items() if not key.startswith("GET"))
    assert writes_after == writes_before
    assert second.added == second.pulled == []
    async with db.sessions() as session:
        pulled = list(
            (
                await session.execute(select(AuditEvent).where(AuditEvent.actor_label == "skebby"))
            ).scalars()
        )
    assert [e.subject_ids for e in pulled] == [f",{bruno.id},"]


async def test_lifting_an_sms_opt_out_takes_the_number_off_skebbys_list(
    db: Database, skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """When staff allow SMS again, the next sync removes the number from Skebby's blacklist
    instead of pulling the opt-out back."""
    (anna,) = await make_customers(db.sessions, 1, sms=ANNA)
    skebby_sim.blacklist_number(ANNA, origin="WEB")
    await _sync(db, skebby_gateway)
    assert await _sms_choices(db, "customer", anna.id) == [(False, "skebby")]
    async with db.sessions.begin() as session:
        await set_channel(
            session,
            KINDS.get("customer"),
            anna.id,
            PreferenceChoice("sms", None, True),
            source=PreferenceSource.STAFF,
            actor=Actor.bot(),
            via="test",
        )
    await _sync(db, skebby_gateway)
    assert not skebby_sim.is_blacklisted(ANNA)
    assert await _sms_choices(db, "customer", anna.id) == [(True, "staff")]
