"""Crash test: ``kill -9`` the service mid-broadcast; after a restart nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.delivery import build_composer
from channels.composition import ComposeRequest
from channels.dispatcher import DispatcherConfig
from persistence.models import Customer, MessageRecipient
from persistence.outbox import read_counters
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import wait_until
from tests.conftest import Database
from tests.factories import FakeClock, delivery_settings, make_customers, make_user
from tests.service_process import ServiceProcess

RECIPIENTS = 2000
BATCH = 100
FIRST_CHAT = 5_000_000


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "429s-and-5pct-5xx"])
async def test_kill_9_mid_broadcast_then_restart_delivers_everything(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, faults: bool
) -> None:
    """Every recipient gets the broadcast, duplicates stay within what was in flight."""
    await make_customers(
        db.sessions, RECIPIENTS, telegram_chat_id=lambda i: FIRST_CHAT + i, name=lambda i: f"R{i}"
    )
    for i in range(RECIPIENTS):
        telegram_sim.add_user(FIRST_CHAT + i, f"R{i}")
    if faults:
        # Each 429 pauses the whole bot for retry_after (as Telegram does): 1 % of 2,000 sends is
        # twenty pauses, enough to prove they are waited out without a minute of waiting.
        telegram_sim.set_fault_rates(rate_429=0.01, rate_5xx=0.05, retry_after=1, seed=11)
    settings = {
        "dispatch_batch_size": str(BATCH),
        "dispatch_lease_seconds": "3",
        "dispatch_backoff_base_seconds": "0.2",
        "telegram_rate_per_second": "400",
    }
    service = ServiceProcess.for_simulator(tmp_path, db.url, telegram_sim, **settings)
    restarted = ServiceProcess.for_simulator(tmp_path, db.url, telegram_sim, **settings)
    await service.start()
    try:
        user = await make_user(db.sessions)
        composer = build_composer(delivery_settings(db.url, tmp_path), db.sessions, FakeClock())
        async with db.sessions() as session:
            customer_ids = list((await session.execute(select(Customer.id))).scalars())
        answer = await composer.send(
            user,
            ComposeRequest(
                channels=["telegram"], body="Storm warning", recipients={"customer": customer_ids}
            ),
        )
        message_id = answer.messages[0].id
        await telegram_sim.wait_for_sends(RECIPIENTS // 4, timeout=60)
        await service.kill()
        sent_before_restart = len(telegram_sim.sends)
        assert sent_before_restart < RECIPIENTS, "the crash came too late to prove anything"

        await restarted.start()
        try:
            await telegram_sim.wait_for_sends(RECIPIENTS, distinct_chats=True, timeout=240)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; the service's log:\n{restarted.log_tail()}") from None

        async def all_final() -> bool:  # a chat reached before the crash may still be retrying
            async with db.sessions() as session:
                counters = (await read_counters(session, [message_id]))[message_id]
            return not counters.get("pending") and not counters.get("sending")

        try:
            await wait_until(all_final, within=60, what="every delivery reached a final status")
        except AssertionError as exc:
            async with db.sessions() as session:
                counters = (await read_counters(session, [message_id]))[message_id]
                rows = (
                    await session.execute(
                        select(
                            MessageRecipient.status, MessageRecipient.lease_owner, func.count()
                        ).group_by(MessageRecipient.status, MessageRecipient.lease_owner)
                    )
                ).all()
            raise AssertionError(
                f"{exc}; counters: {counters}; rows: {rows}; log:\n{restarted.log_tail()}"
            ) from None
        assert await restarted.terminate() == 0
    finally:
        await service.kill()
        await restarted.kill()  # a failed assertion must not leave the second one running

    in_flight_limit = DispatcherConfig(batch_size=BATCH).in_flight_limit
    duplicates = len(telegram_sim.sends) - RECIPIENTS
    assert 0 <= duplicates <= in_flight_limit
    async with db.sessions() as session:
        counters = (await read_counters(session, [message_id]))[message_id]
        not_final = await session.scalar(
            select(func.count())
            .select_from(MessageRecipient)
            .where(MessageRecipient.status.in_(["pending", "sending"]))
        )
    assert counters == {"success": RECIPIENTS}
    assert not_final == 0
