"""Delivering SMS over Skebby through the real pipeline: batching, units, faults, crash probe."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.base import Delivery
from channels.skebby_channel import SkebbyChannel
from channels.skebby_gateway import SkebbyGateway
from channels.sms_text import analyse_sms
from channels.smtp_channel import EmailChannel
from persistence import outbox
from persistence.models import DeliveryStatus, Message, MessageRecipient, MessageStatus
from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import make_customers
from tests.harness import Pipeline, pipeline
from tests.test_email_channel import Server, StartServer, start_server

__all__ = ["start_server"]  # the aiosmtpd fixture, shared with the email tests

FIRST_NUMBER = 3471000000


class SimClock:
    """The simulator's clock (seconds), moved by hand: session expiry without sleeping."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


@pytest.fixture
async def skebby(sim_clock: SimClock) -> AsyncIterator[SkebbySimulator]:
    """The project's Skebby simulator on a free loopback port."""
    async with SkebbySimulator(credits=100_000, clock=sim_clock) as simulator:
        yield simulator


def number(i: int) -> str:
    return f"+39{FIRST_NUMBER + i}"


def sms_channel(skebby: SkebbySimulator, **overrides: Any) -> SkebbyChannel:
    options: dict[str, Any] = {
        "message_type": "GP",
        "sender": "Herald",
        "max_fragments": 7,
        "truncate": False,
        "batch_size": 4,
    }
    options.update(overrides)
    gateway = SkebbyGateway(skebby.base_url, "sandbox", "sandbox", timeout=5)
    return SkebbyChannel(gateway, **options)


@asynccontextmanager
async def sms_pipeline(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    skebby: SkebbySimulator,
    *,
    claim: int = 50,
    **channel: Any,
) -> AsyncIterator[tuple[Pipeline, SkebbyChannel]]:
    sms = sms_channel(skebby, **channel)
    async with pipeline(
        db,
        telegram_sim,
        tmp_path,
        batch_size=claim,
        channels={"sms": sms},
        costs={"sms": Decimal("0.06")},
    ) as p:
        yield p, sms


async def with_mobiles(db: Database, count: int) -> list[int]:
    customers = await make_customers(db.sessions, count, sms=number, name=lambda i: f"M{i}")
    return [c.id for c in customers]


async def send_sms(p: Pipeline, ids: list[int], body: str = "Ufficio chiuso domani") -> int:
    answer = await p.send(channels=["sms"], body=body, recipients={"customer": ids})
    return int(answer.messages[0].id)


def posts(skebby: SkebbySimulator) -> int:
    return skebby.requests["POST sms"]


# --- batching and units ------------------------------------------------------------------------


async def test_recipients_go_in_full_batches_one_order_each(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Ten numbers with a batch size of four make three Skebby orders (4, 4, 2), all unknown."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby, batch_size=4) as (p, _):
        ids = await with_mobiles(db, 10)
        message_id = await send_sms(p, ids)
        assert await p.dispatcher.drain() == 10
        assert posts(skebby) == math.ceil(10 / 4)
        sizes = sorted((len(o.recipients) for o in skebby.orders.values()), reverse=True)
        assert sizes == [4, 4, 2]
        rows = await p.deliveries(message_id)
        assert {r.status for r in rows} == {DeliveryStatus.UNKNOWN}
        assert {r.provider_id for r in rows} == set(skebby.orders)
        assert all(r.sent_number == 1 and r.attempts == 1 for r in rows)
        for order_id, order in skebby.orders.items():
            assert order.sender == "Herald" and order.message_type == "GP"
            assert sorted(order.recipients) == sorted(
                r.address for r in rows if r.provider_id == order_id
            )
        assert await p.counters(message_id) == {"unknown": 10}
        assert (await p.message(message_id)).status == MessageStatus.DONE


TRICKY_TEXTS = [
    ("Saldo: 10€ entro venerdì", "gsm", 1),  # € is GSM-7 (two septets), ì too
    ("Perché così? Sí", "ucs2", 1),  # í is not GSM-7
    ("Riga uno\nriga due\r\nriga tre", "gsm", 1),  # newlines are GSM-7
    ("Ciao 👋", "ucs2", 1),
    ("€" * 80, "gsm", 1),  # 160 septets: € costs two
    ("€" * 81, "gsm", 2),
    ("a" * 160, "gsm", 1),
    ("a" * 161, "gsm", 2),
    ("👋" * 35, "ucs2", 1),  # 70 UTF-16 units
    ("👋" * 36, "ucs2", 2),
    ("è" * 300 + "á", "ucs2", 5),
]


async def test_units_follow_encoding_and_fragments_of_tricky_texts(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """€, accents, emoji and newlines: the unit count matches what Skebby bills per recipient."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        ids = await with_mobiles(db, 2)
        for text, encoding, fragments in TRICKY_TEXTS:
            analysis = analyse_sms(text, max_fragments=7)
            assert (analysis.encoding, analysis.fragments) == (encoding, fragments), text
            message_id = await send_sms(p, ids, text)
            await p.dispatcher.drain()
            rows = await p.deliveries(message_id)
            assert [r.sent_number for r in rows] == [fragments, fragments], text
            (order,) = [skebby.orders[o] for o in {r.provider_id for r in rows} if o]
            assert order.encoding == encoding
            assert order.credits_used == fragments * 2, text
            assert order.message == text


async def test_invoice_is_cost_per_unit_times_units(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A two-part SMS to three people bills six units at the SMS price: 0.36."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        ids = await with_mobiles(db, 3)
        message_id = await send_sms(p, ids, "x" * 200)
        await p.dispatcher.drain()
        async with db.sessions() as session:
            invoice = (
                await session.execute(
                    select(func.sum(Message.cost_per_unit * MessageRecipient.sent_number))
                    .join(MessageRecipient, MessageRecipient.message_id == Message.id)
                    .where(Message.id == message_id)
                )
            ).scalar_one()
        assert Decimal(invoice) == Decimal("0.36")
        assert sum(o.credits_used for o in skebby.orders.values()) == 6


# --- provider faults -----------------------------------------------------------------------------


async def test_expired_session_is_renewed_once_mid_broadcast(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    skebby: SkebbySimulator,
    sim_clock: SimClock,
) -> None:
    """Skebby's session expiring between two batches costs one new login, no delivery."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby, claim=4, batch_size=4) as (p, sms):
        message_id = await send_sms(p, await with_mobiles(db, 8))
        assert await p.dispatcher.run_once("sms") == 4
        sim_clock.now += 301  # idle for more than Skebby's five minutes
        assert await p.dispatcher.run_once("sms") == 4
        assert skebby.logins == 2 and sms.gateway.logins == 2
        assert posts(skebby) == 3  # the refused one and its retry
        assert await p.counters(message_id) == {"unknown": 8}


async def test_server_error_retries_then_succeeds(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A 503 puts the batch back with backoff; later it goes out once, nothing is lost."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        message_id = await send_sms(p, await with_mobiles(db, 3))
        skebby.fail_next("sms", 503, "Service Unavailable", method="POST")
        await p.dispatcher.drain()
        rows = await p.deliveries(message_id)
        assert {r.status for r in rows} == {DeliveryStatus.PENDING}
        assert all(r.last_error and "503" in r.last_error for r in rows)
        assert not skebby.orders
        p.clock.advance(3600)
        assert await p.dispatcher.drain() == 3
        assert await p.counters(message_id) == {"unknown": 3}
        assert posts(skebby) == 2 and len(skebby.orders) == 1


async def test_bad_request_fails_the_batch_with_skebby_details(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Skebby's 400 is final and its reason is shown on every delivery of the batch."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        skebby.credits["GP"] = 1
        message_id = await send_sms(p, await with_mobiles(db, 3))
        await p.dispatcher.drain()
        rows = await p.deliveries(message_id)
        assert {r.status for r in rows} == {DeliveryStatus.FAILED}
        assert all("not enough credit" in r.status_detail for r in rows)
        assert all(r.attempts == 1 for r in rows)
        assert await p.counters(message_id) == {"failed": 3}


async def test_number_refused_by_skebby_is_invalid_and_the_rest_go_out(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A 400 naming one number marks it invalid; the other numbers are sent without it."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        message_id = await send_sms(p, await with_mobiles(db, 3))
        error = json.dumps({"result": "ERROR", "error": f"invalid recipient: '{number(1)}'"})
        skebby.fail_next("sms", 400, error, method="POST")
        await p.dispatcher.drain()
        p.clock.advance(1)  # the others go again at once: no backoff, no attempt lost
        await p.dispatcher.drain()
        rows = await p.deliveries(message_id)
        assert [r.status for r in rows] == ["unknown", "invalid", "unknown"]
        assert number(1) in rows[1].status_detail
        assert [r.attempts for r in rows] == [1, 1, 1]
        (order,) = skebby.orders.values()
        assert sorted(order.recipients) == [number(0), number(2)]


async def test_refused_credentials_keep_the_sms_waiting(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Wrong Skebby credentials lose nothing: the SMS wait, say why, and go once fixed."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        skebby.password = "changed-elsewhere"
        message_id = await send_sms(p, await with_mobiles(db, 2))
        await p.dispatcher.drain()
        rows = await p.deliveries(message_id)
        assert {r.status for r in rows} == {DeliveryStatus.PENDING}
        assert all(r.attempts == 0 for r in rows)
        assert all("refused the credentials" in (r.last_error or "") for r in rows)
        skebby.password = "sandbox"
        p.clock.advance(301)
        assert await p.dispatcher.drain() == 2
        assert await p.counters(message_id) == {"unknown": 2}


# --- crashes and lost answers ---------------------------------------------------------------------


async def test_lost_answer_is_probed_not_sent_twice(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Skebby accepted the batch but the answer was lost: the retry finds the order, no resend."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        message_id = await send_sms(p, await with_mobiles(db, 3))
        skebby.drop_answer_next("sms")
        await p.dispatcher.drain()
        rows = await p.deliveries(message_id)
        assert {r.status for r in rows} == {DeliveryStatus.PENDING}
        (order_id,) = skebby.orders
        assert {r.batch_key for r in rows} == {order_id}
        p.clock.advance(3600)
        assert await p.dispatcher.drain() == 3
        assert posts(skebby) == 1 and len(skebby.orders) == 1
        assert skebby.requests["GET sms/{order_id}"] == 1
        rows = await p.deliveries(message_id)
        assert {(r.status, r.provider_id, r.sent_number) for r in rows} == {
            ("unknown", order_id, 1)
        }
        assert await p.counters(message_id) == {"unknown": 3}


async def test_crash_after_skebby_accepted_is_probed_after_rescue(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A worker dying right after Skebby took the batch: the rescue probes and does not resend."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, sms):
        message_id = await send_sms(p, await with_mobiles(db, 3))
        claimed = await p.claim_as_dead_worker("sms")
        message = (await p.dispatcher._load_messages({message_id}))[message_id]
        key = "h-crash-1"
        async with db.sessions.begin() as session:
            await outbox.set_batch_key(session, [d.id for d in claimed], key)
        keyed = [_delivery(d, key) for d in claimed]
        await sms.send(message, keyed)  # accepted ... and then the process dies
        skebby.set_state(key, number(0), "DLVRD")
        skebby.set_state(key, number(1), "UNKNRCPT")
        p.clock.advance(31)
        assert await p.dispatcher.rescue() == 3
        assert await p.dispatcher.drain() == 3
        assert posts(skebby) == 1
        rows = await p.deliveries(message_id)
        assert [r.status for r in rows] == ["success", "failed", "unknown"]
        assert "UNKNRCPT" in rows[1].status_detail
        assert await p.counters(message_id) == {"success": 1, "failed": 1, "unknown": 1}


async def test_crash_before_skebby_got_the_batch_resends_it(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A worker dying before its request reached Skebby: the probe's 404 lets it go out."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        message_id = await send_sms(p, await with_mobiles(db, 3))
        claimed = await p.claim_as_dead_worker("sms")
        async with db.sessions.begin() as session:
            await outbox.set_batch_key(session, [d.id for d in claimed], "h-never-sent")
        p.clock.advance(31)
        assert await p.dispatcher.rescue() == 3
        assert await p.dispatcher.drain() == 3
        assert skebby.requests["GET sms/{order_id}"] == 1
        assert posts(skebby) == 1
        (order_id,) = skebby.orders
        assert order_id != "h-never-sent"
        assert await p.counters(message_id) == {"unknown": 3}


# --- cancel and mixed broadcasts ---------------------------------------------------------------


async def test_cancel_mid_way_stops_the_remaining_sms(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Cancelling after the first batch keeps that order and never sends the rest."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby, claim=4, batch_size=4) as (p, _):
        message_id = await send_sms(p, await with_mobiles(db, 10))
        assert await p.dispatcher.run_once("sms") == 4
        assert await p.dispatcher.cancel(message_id) == 6
        assert await p.dispatcher.drain() == 0
        assert posts(skebby) == 1
        assert await p.counters(message_id) == {"unknown": 4, "cancelled": 6}
        assert (await p.message(message_id)).status == MessageStatus.CANCELLED


async def test_email_sms_and_telegram_each_get_their_own_message(
    db: Database,
    telegram_sim: TelegramSimulator,
    tmp_path: Path,
    skebby: SkebbySimulator,
    start_server: StartServer,
) -> None:
    """One broadcast on three channels makes three messages, each counting only its own people."""
    server: Server = await start_server()
    email = EmailChannel(server.config())
    sms = sms_channel(skebby)
    async with pipeline(db, telegram_sim, tmp_path, channels={"sms": sms, "email": email}) as p:
        customers = await make_customers(
            db.sessions,
            5,
            sms=lambda i: number(i) if i < 4 else None,
            email=lambda i: f"c{i}@example.org" if i % 2 == 0 else None,
            telegram_chat_id=lambda i: 8_000_000 + i if i < 2 else None,
        )
        for i in range(2):
            telegram_sim.add_user(8_000_000 + i, f"T{i}")
        answer = await p.send(
            channels=["email", "sms", "telegram"],
            subject="Avviso",
            body="Ufficio chiuso",
            recipients={"customer": [c.id for c in customers]},
        )
        ids = {m.channel: m.id for m in answer.messages}
        assert len(set(ids.values())) == 3
        await p.dispatcher.drain()
        assert await p.counters(ids["email"]) == {"success": 3, "invalid": 2}
        assert await p.counters(ids["sms"]) == {"unknown": 4, "invalid": 1}
        assert await p.counters(ids["telegram"]) == {"success": 2, "invalid": 3}
        assert len(await server.handler.wait_for(3)) == 3
        assert sum(len(o.recipients) for o in skebby.orders.values()) == 4
        for channel, message_id in ids.items():
            assert (await p.message(message_id)).channel == channel


def _delivery(d: outbox.ClaimedDelivery, key: str) -> Delivery:
    return Delivery(
        d.id, d.message_id, d.recipient_kind, d.recipient_id, d.address, d.attempts, key
    )
