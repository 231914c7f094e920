"""What each person asked for: channel preferences honoured by presend and by the dispatcher."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from channels.smtp_channel import EmailChannel
from persistence.audit import Actor, AuditAction
from persistence.models import AuditEvent, Customer, MessageTypology, PreferenceSource
from persistence.preferences import (
    PreferenceChoice,
    list_preferences,
    replace_preferences,
    set_channel,
)
from persistence.recipient_kinds import default_registry
from persistence.registration import opt_in, opt_out
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import make_customers
from tests.harness import Pipeline, pipeline

KINDS = default_registry()
CUSTOMER = KINDS.get("customer")


async def _typology(db: Database, name: str) -> int:
    async with db.sessions.begin() as session:
        typology = MessageTypology(name=name)
        session.add(typology)
        await session.flush()
        return typology.id


async def _choose(
    db: Database,
    rid: int,
    channel: str,
    accepted: bool,
    typology_id: int | None = None,
    source: PreferenceSource = PreferenceSource.PERSON,
) -> None:
    async with db.sessions.begin() as session:
        await set_channel(
            session,
            CUSTOMER,
            rid,
            PreferenceChoice(channel, typology_id, accepted),
            source=source,
            actor=Actor.bot(),
            via="test",
        )


async def _people(db: Database, count: int) -> list[Customer]:
    return await make_customers(
        db.sessions,
        count,
        email=lambda i: f"p{i}@example.com",
        sms=lambda i: f"+39347123450{i}",
        telegram_chat_id=lambda i: 500 + i,
    )


def _reasons(plan_json: dict[str, object]) -> dict[int, str]:
    invalid = plan_json["invalid_recipients"]
    assert isinstance(invalid, list)
    return {r["id"]: r["reason"] for r in invalid}


async def _presend(p: Pipeline, ids: list[int], **fields: object) -> dict[str, dict[str, object]]:
    plan = await p.composer.presend(
        p.user,
        p.request(
            channels=["email", "sms", "telegram"],
            subject="Hi",
            body="Hello",
            recipients={"customer": ids},
            **fields,
        ),
    )
    return {c.channel: c.to_json() for c in plan.channels}


async def test_presend_reports_each_refusal_with_its_reason(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Unsubscribed from email, opted out of SMS, no Telegram for one typology: each is invalid
    with a reason saying so, and the others stay valid."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        invoices = await _typology(db, "Invoices")
        people = await _people(db, 4)
        ids = [c.id for c in people]
        await _choose(db, ids[0], "email", False)
        await _choose(db, ids[1], "sms", False)
        await _choose(db, ids[2], "telegram", False, invoices)
        plain = await _presend(p, ids)
        assert _reasons(plain["email"]) == {ids[0]: "unsubscribed from email"}
        assert _reasons(plain["sms"]) == {ids[1]: "opted out of sms"}
        assert _reasons(plain["telegram"]) == {}
        typed = await _presend(p, ids, typology_id=invoices)
        assert _reasons(typed["telegram"]) == {ids[2]: "does not accept telegram for Invoices"}
        assert typed["telegram"]["valid"] == 3


async def test_a_typology_choice_wins_over_the_general_one(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """ "No email, except invoices": invoices reach the person, other email does not."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        invoices = await _typology(db, "Invoices")
        (person,) = await _people(db, 1)
        await _choose(db, person.id, "email", False, source=PreferenceSource.STAFF)
        await _choose(db, person.id, "email", True, invoices, source=PreferenceSource.STAFF)
        assert (await _presend(p, [person.id]))["email"]["valid"] == 0
        assert (await _presend(p, [person.id], typology_id=invoices))["email"]["valid"] == 1


async def test_a_person_refusing_a_channel_drops_their_exceptions(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Unsubscribing from all email also ends the "except invoices" an administrator had set."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        invoices = await _typology(db, "Invoices")
        (person,) = await _people(db, 1)
        await _choose(db, person.id, "email", True, invoices, source=PreferenceSource.STAFF)
        await _choose(db, person.id, "email", False)
        typed = await _presend(p, [person.id], typology_id=invoices)
        assert _reasons(typed["email"]) == {person.id: "unsubscribed from email"}


async def test_the_dispatcher_checks_again_at_send_time(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Someone who unsubscribes after the broadcast was queued is not sent to: their delivery
    ends invalid with the reason, the others go out."""
    async with pipeline(db, telegram_sim, tmp_path, channels={"email": EmailChannel(None)}) as p:
        people = await _people(db, 3)
        ids = [c.id for c in people]
        result = await p.send(
            channels=["email"], subject="News", body="Hello", recipients={"customer": ids}
        )
        await _choose(db, ids[1], "email", False)
        await p.dispatcher.drain("email")
        rows = await p.deliveries(result.messages[0].id)
        by_id = {r.recipient_id: (r.status, r.status_detail) for r in rows}
        assert by_id[ids[1]] == ("invalid", "unsubscribed from email")
        assert by_id[ids[0]][0] == by_id[ids[2]][0] == "success"


async def test_the_dispatcher_honours_a_typology_choice(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A Telegram broadcast of a typology the person refused after it was queued is not sent
    to them; another typology's broadcast is."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        invoices = await _typology(db, "Invoices")
        news = await _typology(db, "News")
        (person,) = await _people(db, 1)
        telegram_sim.add_user(500, "Anna")
        billed = await p.send(recipients={"customer": [person.id]}, typology_id=invoices)
        told = await p.send(recipients={"customer": [person.id]}, typology_id=news)
        await _choose(db, person.id, "telegram", False, invoices)
        await p.dispatcher.drain("telegram")
        (refused,) = await p.deliveries(billed.messages[0].id)
        (sent,) = await p.deliveries(told.messages[0].id)
        assert (refused.status, refused.status_detail) == (
            "invalid",
            "does not accept telegram for Invoices",
        )
        assert sent.status == "success", sent.status_detail


async def test_stop_and_start_write_the_same_preference(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """/stop to the bot is a general Telegram refusal; /start lifts it again."""
    (person,) = await _people(db, 1)
    await opt_out(db.sessions, KINDS, 500)
    async with db.sessions() as session:
        (choice,) = await list_preferences(session, "customer", person.id)
    assert (choice.channel, choice.typology_id, choice.accepted, choice.source) == (
        "telegram",
        None,
        False,
        "person",
    )
    await opt_in(db.sessions, KINDS, 500)
    async with db.sessions() as session:
        (choice,) = await list_preferences(session, "customer", person.id)
        record = await session.get(Customer, person.id)
    assert choice.accepted and record is not None and not record.telegram_opted_out


async def test_every_change_is_audited_and_a_repeat_is_not(db: Database) -> None:
    """A choice that changes something leaves one audit row naming who and what; saying the
    same again leaves none."""
    invoices = await _typology(db, "Invoices")
    (person,) = await _people(db, 1)
    await _choose(db, person.id, "email", False)
    await _choose(db, person.id, "email", False)
    async with db.sessions.begin() as session:
        await replace_preferences(
            session,
            CUSTOMER,
            person.id,
            [PreferenceChoice("telegram", invoices, False)],
            actor=Actor(kind=Actor.bot().kind, label="alice"),
            via="api",
        )
    async with db.sessions() as session:
        events = list(
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.action == AuditAction.PREFERENCES_CHANGED.value)
                    .order_by(AuditEvent.id)
                )
            ).scalars()
        )
        choices = await list_preferences(session, "customer", person.id)
    assert [(e.actor_label, e.subject_ids, e.detail.get("via")) for e in events] == [
        ("bot", f",{person.id},", "test"),
        ("alice", f",{person.id},", "api"),
    ]
    assert events[0].detail["channel"] == "email" and events[0].detail["accepted"] is False
    assert [(c.channel, c.typology_id, c.accepted) for c in choices] == [
        ("telegram", invoices, False)
    ]


async def test_stop_after_the_broadcast_was_queued_is_honoured(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Someone who sends /stop while a broadcast waits gets nothing from it."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (person,) = await _people(db, 1)
        telegram_sim.add_user(500, "Anna")
        queued = await p.send(recipients={"customer": [person.id]})
        await opt_out(db.sessions, KINDS, 500)
        await p.dispatcher.drain("telegram")
        (delivery,) = await p.deliveries(queued.messages[0].id)
        assert (delivery.status, delivery.status_detail) == ("invalid", "does not accept telegram")
        assert telegram_sim.messages_to(500) == []
