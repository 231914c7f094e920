"""Composing broadcasts: who is reached on which channel, presend numbers, idempotency, scoping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import channels.composer as composer_module
from channels.attachments import IncomingAttachment
from channels.composition import (
    CompositionError,
    IdempotencyConflictError,
    RecipientsNotVisibleError,
)
from persistence.enqueue import NewDelivery, insert_deliveries
from persistence.models import (
    Customer,
    CustomerTypology,
    Message,
    MessageAttachment,
    MessageRecipient,
)
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import make_customers, make_subject, make_user
from tests.harness import pipeline


async def test_presend_classifies_each_channel_and_writes_nothing(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Presend reports valid, invalid and duplicate recipients per channel, with reasons."""
    async with pipeline(db, telegram_sim, tmp_path, costs={"sms": Decimal("0.05")}) as p:
        people = await make_customers(
            db.sessions,
            5,
            email=lambda i: ["a@example.com", "A@example.com", "bad@", None, "e@example.org"][i],
            sms=lambda i: ["+393331234567", "+393331234567", "+39 12", None, "+393339876543"][i],
            telegram_chat_id=lambda i: [10, 10, None, 13, 14][i],
            telegram_opted_out=lambda i: i == 3,
            telegram_blocked=lambda i: i == 4,
        )
        ids = [c.id for c in people]
        plan = await p.composer.presend(
            p.user,
            p.request(
                channels=["email", "sms", "telegram", "storage"],
                subject="Hi",
                body="Caffè at 10 €",
                recipients={"customer": ids},
            ),
        )
        by_channel = {c.channel: c.to_json() for c in plan.channels}
        assert [by_channel["email"][k] for k in ("valid", "invalid", "duplicate")] == [2, 2, 1]
        assert [by_channel["sms"][k] for k in ("valid", "invalid", "duplicate")] == [2, 2, 1]
        assert [by_channel["telegram"][k] for k in ("valid", "invalid", "duplicate")] == [1, 3, 1]
        assert [by_channel["storage"][k] for k in ("valid", "invalid", "duplicate")] == [5, 0, 0]
        reasons = {r["id"]: r["reason"] for r in by_channel["telegram"]["invalid_recipients"]}
        assert "opted out" in reasons[ids[3]] and "blocked" in reasons[ids[4]]
        assert by_channel["sms"]["sms"] == {
            "encoding": "gsm",
            "characters": 14,
            "fragments": 1,
            "fits": True,
        }
        assert by_channel["sms"]["estimated_cost"] == "0.10"
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_storage_deduplicates_by_kind_and_id_not_bare_id(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A customer and an external subject sharing id 1 are two inbox recipients, not one."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (customer,) = await make_customers(db.sessions, 1)
        subject = await make_subject(db.sessions, id=customer.id)
        plan = await p.composer.presend(
            p.user,
            p.request(
                channels=["storage"],
                recipients={
                    "customer": [customer.id, customer.id],
                    "external_subject": [subject.id],
                },
                include_related=False,
            ),
        )
        assert plan.channels[0].to_json()["valid"] == 2
        assert plan.channels[0].to_json()["duplicate"] == 0


async def test_related_contacts_are_expanded_without_looping(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Sending to a customer also reaches the subjects acting for it, once, despite the cycle."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (customer,) = await make_customers(db.sessions, 1)
        first = await make_subject(db.sessions, related_customer_id=customer.id)
        second = await make_subject(db.sessions, related_customer_id=customer.id)
        plan = await p.composer.presend(
            p.user, p.request(channels=["storage"], recipients={"customer": [customer.id]})
        )
        assert plan.recipients == 3
        assert {(t.kind, t.id) for t in plan.channels[0].classification.valid} == {
            ("customer", customer.id),
            ("external_subject", first.id),
            ("external_subject", second.id),
        }


async def test_typology_selection_reaches_every_recipient_of_the_typology(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Selecting a customer typology sends to all of its customers and no one else."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        async with db.sessions.begin() as session:
            vip = CustomerTypology(name="vip")
            session.add(vip)
        await make_customers(db.sessions, 3, typology_id=vip.id)
        await make_customers(db.sessions, 2)
        plan = await p.composer.presend(
            p.user,
            p.request(channels=["storage"], typology_selection={"customer": [vip.id]}),
        )
        assert plan.recipients == 3


async def test_other_users_recipients_are_reported_and_never_sent_to(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A non-superuser's presend lists foreign ids as not visible and the send is refused."""
    async with pipeline(db, telegram_sim, tmp_path, superuser=False) as p:
        other = await make_user(db.sessions, superuser=False)
        (mine,) = await make_customers(db.sessions, 1, owner_id=p.user.id)
        (theirs,) = await make_customers(db.sessions, 1, owner_id=other.id)
        request = p.request(
            channels=["storage"], recipients={"customer": [mine.id, theirs.id, 999_999]}
        )
        plan = await p.composer.presend(p.user, request)
        assert plan.not_visible == [("customer", theirs.id), ("customer", 999_999)]
        assert plan.recipients == 1
        with pytest.raises(RecipientsNotVisibleError) as refused:
            await p.composer.send(p.user, request)
        assert refused.value.refs == [("customer", theirs.id), ("customer", 999_999)]
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(MessageRecipient)) == 0


async def test_send_writes_every_delivery_in_one_go_with_counters(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A send stores one message per channel and a delivery row for every recipient."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        people = await make_customers(
            db.sessions, 300, email=lambda i: f"p{i}@example.com" if i % 3 else "broken"
        )
        answer = await p.send(
            channels=["email", "storage"],
            subject="Report",
            recipients={"customer": [c.id for c in people]},
        )
        email, storage = answer.messages
        assert email.counts == {"pending": 200, "invalid": 100, "duplicate": 0}
        assert storage.counts == {"pending": 300, "invalid": 0, "duplicate": 0}
        assert await p.counters(email.id) == {"pending": 200, "invalid": 100}
        rows = await p.deliveries(email.id)
        assert len(rows) == 300
        assert {r.status_detail for r in rows if r.status == "invalid"} == {
            "invalid email address 'broken'"
        }
        assert (await p.message(email.id)).total == 300


async def test_same_idempotency_key_replays_and_different_content_is_refused(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Repeating a send with its Idempotency-Key returns the first answer; new content conflicts."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1)
        first = await p.send(
            channels=["storage"], recipients={"customer": [c.id]}, idempotency_key="k1"
        )
        again = await p.send(
            channels=["storage"], recipients={"customer": [c.id]}, idempotency_key="k1"
        )
        assert again.replayed is True
        assert again.messages == first.messages
        with pytest.raises(IdempotencyConflictError):
            await p.send(
                channels=["storage"],
                body="other",
                recipients={"customer": [c.id]},
                idempotency_key="k1",
            )
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"channels": []}, "channels"),
        ({"channels": ["fax"]}, "channels[0]"),
        ({"body": "  "}, "body"),
        ({"channels": ["email"], "subject": ""}, "subject"),
        ({"recipients": {"robot": [1]}}, "recipients.robot"),
        ({"recipients": {}}, "recipients"),
        ({"typology_id": 12345}, "typology_id"),
    ],
)
async def test_bad_requests_name_the_field(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    fields: dict[str, object],
    field: str,
) -> None:
    """Each invalid input is refused with the name of the offending field."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        fields = {"channels": ["storage"], "recipients": {"customer": [1]}, **fields}
        with pytest.raises(CompositionError) as error:
            await p.composer.presend(p.user, p.request(**fields))
        assert error.value.field == field


async def test_sms_too_long_for_max_fragments_is_refused(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A text needing more SMS fragments than allowed shows in presend and blocks the send."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, sms="+393331234567")
        request = p.request(channels=["sms"], body="😀" * 500, recipients={"customer": [c.id]})
        plan = await p.composer.presend(p.user, request)
        assert plan.channels[0].sms is not None and not plan.channels[0].sms.fits
        assert plan.channels[0].problems
        with pytest.raises(CompositionError, match="fragments"):
            await p.composer.send(p.user, request)


async def test_attachments_are_stored_with_safe_names_and_checksums(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """An attachment is kept on disk under a sanitized name with its size and SHA-256."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1)
        await p.send(
            channels=["storage"],
            recipients={"customer": [c.id]},
            attachments=[IncomingAttachment("..\\..\\evil\x00name?.txt", b"hello", None)],
        )
        async with db.sessions() as session:
            (stored,) = (await session.execute(select(MessageAttachment))).scalars()
        assert stored.file_name == "evil_name_.txt"
        assert stored.content_type == "text/plain"
        assert stored.size == 5
        assert stored.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        assert (tmp_path / "attachments" / stored.storage_path).read_bytes() == b"hello"


async def test_oversized_attachment_is_refused_and_nothing_is_written(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """An attachment over the size limit is refused by name; no message is created."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1)
        big = IncomingAttachment("big.bin", b"x" * (p.composer.config.max_attachment_bytes + 1))
        with pytest.raises(CompositionError) as error:
            await p.send(channels=["storage"], recipients={"customer": [c.id]}, attachments=[big])
        assert error.value.field == "attachments[0]"
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Customer)) == 1
            assert await session.scalar(select(func.count()).select_from(Message)) == 0


@asynccontextmanager
async def database_refusing_attachment_rows(db: Database) -> AsyncIterator[None]:
    """The database fails every insert into message_attachments, as a full disk would."""
    if db.backend == "postgresql":
        create = [
            "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'no space left'; END $$",
            "CREATE TRIGGER refuse_attachments BEFORE INSERT ON message_attachments"
            " FOR EACH ROW EXECUTE FUNCTION refuse_row()",
        ]
        drop = [
            "DROP TRIGGER refuse_attachments ON message_attachments",
            "DROP FUNCTION refuse_row()",
        ]
    else:
        create = [
            "CREATE TRIGGER refuse_attachments BEFORE INSERT ON message_attachments"
            " BEGIN SELECT RAISE(ABORT, 'no space left'); END"
        ]
        drop = ["DROP TRIGGER refuse_attachments"]
    async with db.engine.begin() as conn:
        for statement in create:
            await conn.execute(text(statement))
    try:
        yield
    finally:
        async with db.engine.begin() as conn:
            for statement in drop:
                await conn.execute(text(statement))


async def test_failed_send_leaves_no_attachment_files_behind(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A send the database refuses stores no message and leaves no attachment file on disk."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1)
        files = [IncomingAttachment("a.txt", b"one"), IncomingAttachment("b.pdf", b"%PDF")]
        async with database_refusing_attachment_rows(db):
            with pytest.raises(DBAPIError, match="no space left"):
                await p.send(
                    channels=["storage"], recipients={"customer": [c.id]}, attachments=files
                )
        assert [f for f in (tmp_path / "attachments").rglob("*") if f.is_file()] == []
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == 0
        await p.send(channels=["storage"], recipients={"customer": [c.id]}, attachments=files)
        assert len([f for f in (tmp_path / "attachments").rglob("*") if f.is_file()]) == 2


async def test_send_writes_what_presend_announced_in_the_callers_order(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send writes exactly the rows its presend announced, in the order recipients were named."""
    # Tiny slices: the send classifies while it writes, so every slice boundary gets crossed.
    monkeypatch.setattr(composer_module, "STREAM_SLICE", 2)
    async with pipeline(db, telegram_sim, tmp_path) as p:
        people = await make_customers(
            db.sessions,
            9,
            email=lambda i: [f"p{i}@example.com", "same@example.com", "broken", None][i % 4],
            telegram_chat_id=lambda i: 500 + i if i % 3 else None,
        )
        subject = await make_subject(db.sessions, related_customer_id=people[0].id, email="s@x.it")
        named = [c.id for c in reversed(people)]
        request = p.request(
            channels=["email", "telegram"], subject="Hi", recipients={"customer": named}
        )
        plan = await p.composer.presend(p.user, request)
        answer = await p.composer.send(p.user, request)
        for channel_plan, message in zip(plan.channels, answer.messages, strict=True):
            c = channel_plan.classification
            expected = [(t.kind, t.id, t.address, "pending", "") for t in c.valid]
            expected += [(x.kind, x.id, x.address or "", "invalid", x.reason) for x in c.invalid]
            expected += [
                (x.kind, x.id, x.address or "", "duplicate", x.reason) for x in c.duplicates
            ]
            rows = await p.deliveries(message.id)
            written = [
                (r.recipient_kind, r.recipient_id, r.address, r.status, r.status_detail)
                for r in rows
            ]
            assert written == expected
            assert (await p.message(message.id)).total == 10
            assert message.counts == {
                "pending": len(c.valid),
                "invalid": len(c.invalid),
                "duplicate": len(c.duplicates),
            }
        email = plan.channels[0].classification
        assert [t.id for t in email.valid] == [named[0], named[3], named[4], named[8], subject.id]


async def test_bulk_written_deliveries_roll_back_with_their_transaction(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Delivery rows bulk-written first thing in a transaction that fails are not kept."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1)
        answer = await p.send(channels=["storage"], recipients={"customer": [c.id]})
        message_id = answer.messages[0].id
        now = p.clock()
        extra = NewDelivery(message_id, "storage", "customer", c.id, "", "pending", "", now, now)
        with pytest.raises(ConnectionResetError):
            async with db.sessions.begin() as session:
                await insert_deliveries(session, [extra])
                raise ConnectionResetError("the process died before COMMIT")
        async with db.sessions() as session:
            count = select(func.count()).select_from(MessageRecipient)
            assert await session.scalar(count) == 1
