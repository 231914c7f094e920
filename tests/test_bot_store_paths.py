"""The hot paths behind each update: what store_inbound writes, and which persistence writes happen.

store_inbound is one statement on PostgreSQL and a three-statement transaction on SQLite; both must
leave exactly the rows the ORM would have written. PTB hands persistence every touched user's data
on every run, changed or not: only changes reach the database, a run's rows in one write.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import event, select

from persistence.bot_persistence import DatabasePersistence
from persistence.models import BotUserData, MessageCounter, MessageRecipient
from persistence.models import Message as StoredMessage
from persistence.registration import InboundText, LinkedRecipient, store_inbound
from tests.bot_support import add_customer, add_subject
from tests.conftest import Database


async def test_store_inbound_writes_the_message_senders_and_counter(db: Database) -> None:
    """Every column as before: defaults filled, one sender row per record, the counter row."""
    customer = await add_customer(db, "Lia", "+393331234567")
    subject = await add_subject(db, "Lia Srl", "+393331234567")
    senders = [
        LinkedRecipient("customer", customer, "Lia"),
        LinkedRecipient("external_subject", subject, "Lia Srl"),
    ]
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    inbound = InboundText(4242, 17, "ciao 👋 ' \" \\\\", "L" * 200, when)
    message_id = await store_inbound(db.sessions, inbound, senders)
    empty_id = await store_inbound(db.sessions, InboundText(4243, 18, "x", "Nobody", when), [])

    async with db.sessions() as session:
        message = await session.get(StoredMessage, message_id)
        assert message is not None
        assert (message.channel, message.body, message.direction, message.status) == (
            "telegram",
            inbound.text,
            "received",
            "received",
        )
        assert message.sender_name == "L" * 150 and message.total == 2
        assert message.subject == "" and message.body_html is None
        assert message.cost_per_unit == Decimal(0) and message.invoiced is False
        assert message.finished_at == when and message.created_at is not None
        assert message.extra == {"telegram_chat_id": 4242, "telegram_message_id": 17}
        assert len(message.broadcast_id) == 36

        rows = (
            await session.scalars(
                select(MessageRecipient)
                .where(MessageRecipient.message_id == message_id)
                .order_by(MessageRecipient.recipient_kind)
            )
        ).all()
        assert [(r.recipient_kind, r.recipient_id) for r in rows] == [
            ("customer", customer),
            ("external_subject", subject),
        ]
        for row in rows:
            assert (row.channel, row.address, row.status, row.provider_id) == (
                "telegram",
                "4242",
                "received",
                "17",
            )
            assert row.is_sender is True and row.sent_at == when
            assert (row.status_detail, row.attempts, row.sent_number) == ("", 0, 0)
            assert row.next_attempt_at is None and row.created_at is not None

        counters = (
            await session.execute(
                select(MessageCounter.message_id, MessageCounter.status, MessageCounter.count)
            )
        ).all()
        assert counters == [(message_id, "received", 2)]

        empty = await session.get(StoredMessage, empty_id)
        assert empty is not None and empty.total == 0


async def test_persistence_writes_only_changes_and_batches_a_run(db: Database) -> None:
    """Unchanged (or never stored and empty) data is not written; one run's rows go together."""
    first = DatabasePersistence(db.sessions, update_interval=60)
    assert await first.get_user_data() == {}
    statements: list[str] = []

    def count(*args: object) -> None:
        if "bot_user_data" in str(args[2]):
            statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await asyncio.gather(*(first.update_user_data(uid, {}) for uid in range(5)))
        assert statements == []  # empty data of users never stored: nothing to write
        await asyncio.gather(*(first.update_user_data(uid, {"n": uid}) for uid in range(5)))
        assert len(statements) == 1  # five users, one statement
        await asyncio.gather(*(first.update_user_data(uid, {"n": uid}) for uid in range(5)))
        assert len(statements) == 1  # unchanged: not rewritten
        await first.update_user_data(1, {"n": True})  # 1 == True in Python, not in storage
        await first.update_user_data(2, {})  # emptied: must be stored as such
        assert len(statements) == 3
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)

    second = DatabasePersistence(db.sessions, update_interval=60)
    loaded = await second.get_user_data()
    assert loaded == {0: {"n": 0}, 1: {"n": True}, 2: {}, 3: {"n": 3}, 4: {"n": 4}}
    await second.drop_user_data(3)
    await second.update_user_data(3, {"back": 1})
    await second.update_user_data(4, {"n": 4})  # as loaded: not rewritten, still there
    assert await DatabasePersistence(db.sessions).get_user_data() == {
        0: {"n": 0},
        1: {"n": True},
        2: {},
        3: {"back": 1},
        4: {"n": 4},
    }
    async with db.sessions() as session:
        assert len((await session.scalars(select(BotUserData))).all()) == 5
