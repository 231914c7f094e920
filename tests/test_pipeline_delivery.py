"""Delivering over Telegram and the inbox: outcomes, retries, cancel, schedule, rescue."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.attachments import IncomingAttachment
from persistence import outbox
from persistence.models import Customer, DeliveryStatus, MessageRecipient, MessageStatus
from persistence.outbox import DeliveryUpdate
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import make_customers
from tests.harness import pipeline

CHAT_BASE = 7_000_000


async def _linked(db: Database, sim: TelegramSimulator, count: int) -> list[int]:
    customers = await make_customers(
        db.sessions, count, telegram_chat_id=lambda i: CHAT_BASE + i, name=lambda i: f"C{i}"
    )
    for c in customers:
        assert c.telegram_chat_id is not None
        sim.add_user(c.telegram_chat_id, c.name)
    return [c.id for c in customers]


async def test_broadcast_reaches_every_linked_chat_and_counts_success(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Each linked customer gets the escaped text under a bold subject; the message ends done."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=4) as p:
        ids = await _linked(db, telegram_sim, 10)
        answer = await p.send(
            subject="News", body="Office closed <today>", recipients={"customer": ids}
        )
        message_id = answer.messages[0].id
        assert answer.messages[0].counts["pending"] == 10
        assert await p.dispatcher.drain() == 10
        for i in range(10):
            (sent,) = telegram_sim.messages_to(CHAT_BASE + i)
            assert sent.parse_mode == "HTML"
            assert sent.text == "<b>News</b>\n\nOffice closed &lt;today&gt;"
        assert await p.counters(message_id) == {"success": 10}
        assert (await p.message(message_id)).status == MessageStatus.DONE
        rows = await p.deliveries(message_id)
        assert all(r.provider_id and r.sent_number == 1 and r.attempts == 1 for r in rows)


async def test_long_text_is_split_never_truncated(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """An 8,789-character text arrives as three messages that together hold all of it."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        body = " ".join(f"word{i}" for i in range(1100))  # 8,789 characters
        answer = await p.send(body=body, recipients={"customer": [cid]})
        await p.dispatcher.drain()
        parts = telegram_sim.messages_to(CHAT_BASE)
        assert len(parts) == 3
        assert " ".join((m.text or "").strip() for m in parts).split() == body.split()
        (row,) = await p.deliveries(answer.messages[0].id)
        assert row.sent_number == 3


async def test_attachments_arrive_as_photo_and_document(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Images go as photos and other files as documents, byte-identical, with safe names."""
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    pdf = b"%PDF-1.4 test document"
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        await p.send(
            body="See attached",
            recipients={"customer": [cid]},
            attachments=[
                IncomingAttachment("../../etc/photo.png", png, "image/png"),
                IncomingAttachment("report 2026.pdf", pdf, "application/pdf"),
            ],
        )
        await p.dispatcher.drain()
        text, photo, document = telegram_sim.messages_to(CHAT_BASE)
        assert text.text == "See attached"
        assert photo.method == "sendPhoto" and document.method == "sendDocument"
        assert photo.file is not None and document.file is not None
        assert photo.file.sha256 == hashlib.sha256(png).hexdigest()
        assert document.file.sha256 == hashlib.sha256(pdf).hexdigest()
        assert document.file.name == "report 2026.pdf"
        assert photo.file.name == "photo.png"


async def test_a_provider_error_retries_later_without_spending_an_attempt(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A 502 puts the delivery back with a later attempt time and no attempt spent; it succeeds
    on the retry."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        telegram_sim.fail_next("sendMessage", error_code=502, description="Bad Gateway")
        answer = await p.send(recipients={"customer": [cid]})
        message_id = answer.messages[0].id
        await p.dispatcher.drain()
        (row,) = await p.deliveries(message_id)
        assert row.status == DeliveryStatus.PENDING and row.attempts == 0
        assert row.next_attempt_at is not None and row.next_attempt_at > p.clock.now
        assert row.last_error and "502" in row.last_error
        assert await p.dispatcher.drain() == 0  # not due yet
        p.clock.advance(3600)
        assert await p.dispatcher.drain() == 1
        (row,) = await p.deliveries(message_id)
        assert row.status == DeliveryStatus.SUCCESS and row.attempts == 1
        assert len(telegram_sim.messages_to(CHAT_BASE)) == 1


async def test_other_transient_errors_stop_after_max_attempts_with_the_reason(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """An unexpected error that is not an outage spends attempts; after the last one the
    delivery is failed and says why, and the message is done."""
    async with pipeline(db, telegram_sim, tmp_path, max_attempts=3) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        telegram_sim.fail_next("sendMessage", error_code=409, description="Conflict", count=10)
        answer = await p.send(recipients={"customer": [cid]})
        message_id = answer.messages[0].id
        for _ in range(3):
            await p.dispatcher.drain()
            p.clock.advance(3600)
        (row,) = await p.deliveries(message_id)
        assert row.status == DeliveryStatus.FAILED and row.attempts == 3
        assert "gave up after 3 attempts" in row.status_detail
        assert await p.counters(message_id) == {"failed": 1}
        assert (await p.message(message_id)).status == MessageStatus.DONE


async def test_an_outage_ends_a_delivery_only_at_its_deadline(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A provider failing for hours spends no attempts; the delivery fails only once it is
    24 hours past due, with the provider's last answer as the reason."""
    async with pipeline(db, telegram_sim, tmp_path, max_attempts=3) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        telegram_sim.fail_next("sendMessage", error_code=500, description="Internal", count=100)
        answer = await p.send(recipients={"customer": [cid]})
        message_id = answer.messages[0].id
        for _ in range(10):  # ten tries over 20 hours: still waiting
            await p.dispatcher.drain()
            p.clock.advance(2 * 3600)
        (row,) = await p.deliveries(message_id)
        assert row.status == DeliveryStatus.PENDING and row.attempts == 0
        p.clock.advance(4 * 3600)
        await p.dispatcher.drain()
        (row,) = await p.deliveries(message_id)
        assert row.status == DeliveryStatus.FAILED
        assert "gave up after 24 h" in row.status_detail and "500" in row.status_detail
        assert (await p.message(message_id)).status == MessageStatus.DONE


async def test_retry_after_pauses_the_channel_without_burning_attempts(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A 429 pauses Telegram sends for retry_after and does not count as a failed attempt."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        telegram_sim.fail_next(
            "sendMessage", error_code=429, description="Too Many Requests", retry_after=7
        )
        answer = await p.send(recipients={"customer": [cid]})
        await p.dispatcher.drain()
        (row,) = await p.deliveries(answer.messages[0].id)
        assert row.status == DeliveryStatus.PENDING and row.attempts == 0
        assert 6 < p.limiter.paused_for <= 7
        assert row.next_attempt_at is not None
        assert (row.next_attempt_at - p.clock.now).total_seconds() >= 7


async def test_blocked_user_is_final_and_flags_the_recipient(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A user who blocked the bot gets status blocked, is never retried, and is flagged."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        ids = await _linked(db, telegram_sim, 2)
        await telegram_sim.block_bot(CHAT_BASE)
        answer = await p.send(recipients={"customer": ids})
        message_id = answer.messages[0].id
        await p.dispatcher.drain()
        assert await p.counters(message_id) == {"blocked": 1, "success": 1}
        async with db.sessions() as session:
            blocked = await session.get(Customer, ids[0])
            assert blocked is not None and blocked.telegram_blocked
        preview = await p.composer.presend(p.user, p.request(recipients={"customer": ids}))
        assert preview.channels[0].classification.invalid[0].reason.endswith("blocked the bot")


async def test_chat_not_found_is_invalid(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A chat id Telegram does not know ends invalid at once, with Telegram's reason."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (customer,) = await make_customers(db.sessions, 1, telegram_chat_id=999)
        answer = await p.send(recipients={"customer": [customer.id]})
        await p.dispatcher.drain()
        (row,) = await p.deliveries(answer.messages[0].id)
        assert row.status == DeliveryStatus.INVALID and row.attempts == 1
        assert "chat not found" in row.status_detail.lower()


async def test_migrated_group_is_followed_once_and_remembered(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A group upgraded to a supergroup receives the message at its new id, stored for next time."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        telegram_sim.add_group(-100, "Staff")
        await telegram_sim.migrate_group(-100, -1001234)
        (customer,) = await make_customers(db.sessions, 1, telegram_chat_id=-100)
        answer = await p.send(recipients={"customer": [customer.id]})
        await p.dispatcher.drain()
        (row,) = await p.deliveries(answer.messages[0].id)
        assert row.status == DeliveryStatus.SUCCESS and row.address == "-1001234"
        assert len(telegram_sim.messages_to(-1001234)) == 1
        async with db.sessions() as session:
            moved = await session.get(Customer, customer.id)
            assert moved is not None and moved.telegram_chat_id == -1001234


async def test_cancel_mid_way_stops_the_rest(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Cancelling after the first batch leaves the delivered ones and cancels all the others."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=3) as p:
        ids = await _linked(db, telegram_sim, 10)
        answer = await p.send(recipients={"customer": ids})
        message_id = answer.messages[0].id
        assert await p.dispatcher.run_once("telegram") == 3
        assert await p.dispatcher.cancel(message_id) == 7
        assert await p.dispatcher.drain() == 0
        assert await p.counters(message_id) == {"success": 3, "cancelled": 7}
        assert (await p.message(message_id)).status == MessageStatus.CANCELLED
        assert sum(len(telegram_sim.messages_to(CHAT_BASE + i)) for i in range(10)) == 3


async def test_claimed_deliveries_of_a_cancelled_message_are_not_sent(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A cancel from elsewhere stops deliveries another worker already claimed."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=5) as p:
        ids = await _linked(db, telegram_sim, 5)
        answer = await p.send(recipients={"customer": ids})
        message_id = answer.messages[0].id
        claimed = await p.dispatcher._claim("telegram")
        await p.dispatcher.cancel(message_id)
        await p.dispatcher._process("telegram", claimed)
        assert await p.counters(message_id) == {"cancelled": 5}
        assert telegram_sim.messages_to(CHAT_BASE) == []


async def test_scheduled_message_waits_and_survives_a_restart(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A message for later is not sent early, and after a restart it is sent exactly once."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (cid,) = await _linked(db, telegram_sim, 1)
        send_at = p.clock.now.replace(microsecond=0) + __import__("datetime").timedelta(hours=2)
        answer = await p.send(recipients={"customer": [cid]}, send_at=send_at)
        assert answer.status == "scheduled"
        message_id = answer.messages[0].id
        assert await p.dispatcher.drain() == 0
        start = p.clock.now
    async with pipeline(db, telegram_sim, tmp_path) as restarted:  # a new process, same database
        restarted.clock.now = start
        restarted.clock.advance(2 * 3600 + 1)
        assert await restarted.dispatcher.drain() == 1
        assert await restarted.dispatcher.drain() == 0
        assert len(telegram_sim.messages_to(CHAT_BASE)) == 1
        assert (await restarted.message(message_id)).status == MessageStatus.DONE


async def test_deliveries_of_a_crashed_worker_are_rescued(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Deliveries claimed by a worker that died are sent after their lease expires."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10) as p:
        ids = await _linked(db, telegram_sim, 4)
        answer = await p.send(recipients={"customer": ids})
        message_id = answer.messages[0].id
        await p.claim_as_dead_worker("telegram")
        assert await p.counters(message_id) == {"sending": 4}
        assert await p.dispatcher.rescue() == 0  # lease still valid
        p.clock.advance(31)
        assert await p.dispatcher.rescue() == 4
        assert await p.dispatcher.drain() == 4
        assert await p.counters(message_id) == {"success": 4}
        rows = await p.deliveries(message_id)
        assert [r.attempts for r in rows] == [2, 2, 2, 2]


async def test_storage_channel_records_the_inbox_entry(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """The in-app inbox delivers at once: one success and one unit per recipient."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        customers = await make_customers(db.sessions, 3)
        answer = await p.send(
            channels=["storage"], recipients={"customer": [c.id for c in customers]}
        )
        await p.dispatcher.drain()
        rows = await p.deliveries(answer.messages[0].id)
        assert [(r.status, r.sent_number) for r in rows] == [("success", 1)] * 3


async def test_background_workers_deliver_without_being_asked(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """With the dispatcher running, a new broadcast is delivered promptly on its own."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        ids = await _linked(db, telegram_sim, 5)
        await p.dispatcher.start()
        await p.send(recipients={"customer": ids})
        for i in range(5):
            await telegram_sim.wait_for_messages(CHAT_BASE + i, 1, timeout=10)
        async with db.sessions() as session:
            count = len((await session.execute(select(Customer))).all())
        assert count == 5


async def test_a_live_worker_keeps_its_deliveries_past_the_lease(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A worker still waiting on a rate limit renews its lease, so nobody sends its rows twice."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10) as p:
        ids = await _linked(db, telegram_sim, 3)
        answer = await p.send(recipients={"customer": ids})
        claimed = await p.dispatcher._claim("telegram")
        p.clock.advance(20)
        assert await p.dispatcher.renew_leases() == 3
        p.clock.advance(20)  # 40 s after the claim, past the 30 s lease, but renewed at 20 s
        assert await p.dispatcher.rescue() == 0
        await p.dispatcher._process("telegram", claimed)
        assert await p.counters(answer.messages[0].id) == {"success": 3}


async def test_a_batch_the_worker_lost_is_not_kept_alive_and_gets_rescued(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Rows this worker holds but no batch is working on (it failed) lapse and are sent again."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10) as p:
        ids = await _linked(db, telegram_sim, 3)
        answer = await p.send(recipients={"customer": ids})
        now = p.clock()
        async with db.sessions.begin() as session:  # claimed under this worker's name, then lost
            await outbox.claim(
                session,
                channel="telegram",
                limit=10,
                now=now,
                lease_until=now + timedelta(seconds=30),
                owner=p.dispatcher.owner,
            )
        p.clock.advance(20)
        assert await p.dispatcher.renew_leases() == 0
        p.clock.advance(20)
        assert await p.dispatcher.rescue() == 3
        assert await p.dispatcher.drain() == 3
        assert await p.counters(answer.messages[0].id) == {"success": 3}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_rescue_skips_deliveries_another_transaction_is_writing(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """The rescue neither waits for nor takes a delivery whose outcome is being written."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10) as p:
        ids = await _linked(db, telegram_sim, 3)
        await p.send(recipients={"customer": ids})
        claimed = await p.claim_as_dead_worker("telegram")
        p.clock.advance(31)
        async with db.sessions.begin() as writing:
            await writing.execute(
                select(MessageRecipient.id)
                .where(MessageRecipient.id == claimed[0].id)
                .with_for_update()
            )
            assert await asyncio.wait_for(p.dispatcher.rescue(), timeout=10) == 2
        assert await p.dispatcher.rescue() == 1


async def test_outcomes_that_never_commit_change_neither_rows_nor_counters(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A crash before the outcomes commit leaves deliveries and counters both still 'sending'."""
    async with pipeline(db, telegram_sim, tmp_path, batch_size=10) as p:
        ids = await _linked(db, telegram_sim, 3)
        message_id = (await p.send(recipients={"customer": ids})).messages[0].id
        claimed = await p.dispatcher._claim("telegram")
        outcomes = [DeliveryUpdate(d.id, DeliveryStatus.SUCCESS, d.attempts) for d in claimed]
        with pytest.raises(ConnectionResetError):
            async with db.sessions.begin() as session:
                await outbox.record(session, owner=p.dispatcher.owner, updates=outcomes)
                raise ConnectionResetError("the process died before COMMIT")
        assert await p.counters(message_id) == {"sending": 3}
        assert {r.status for r in await p.deliveries(message_id)} == {DeliveryStatus.SENDING}
        assert await p.dispatcher.drain() == 0  # still leased: the rescue decides, not a resend
