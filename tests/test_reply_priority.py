"""An answer from the console's answer box goes ahead of a broadcast on the shared Telegram
budget, like the bot's own replies; and only a one-person Telegram message may claim that."""

from __future__ import annotations

import asyncio

import pytest

from channels.base import Delivery, OutgoingMessage
from channels.composer import Composer
from channels.composition import REPLY_EXTRA_KEY, ComposerConfig, ComposeRequest, CompositionError
from channels.telegram_channel import TelegramChannel
from channels.telegram_client import BotApiClient
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence.models import User
from persistence.recipient_kinds import default_registry
from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import Database
from tests.factories import FakeClock

REPLY_CHAT = 999


async def test_a_reply_overtakes_a_queued_broadcast(telegram_sim: TelegramSimulator) -> None:
    """With fifteen broadcast sends waiting on a 5/s budget, the reply is among the first out."""
    for chat in [*range(1, 16), REPLY_CHAT]:
        telegram_sim.add_user(chat, f"Person {chat}")
    client = BotApiClient(telegram_sim.token, telegram_sim.base_url)
    channel = TelegramChannel(client, TelegramRateLimiter(5), parse_mode=None)
    broadcast = OutgoingMessage(1, "telegram", "", "News for everyone")
    reply = OutgoingMessage(2, "telegram", "", "Answer", extra={REPLY_EXTRA_KEY: True})

    def delivery(message: OutgoingMessage, chat: int) -> list[Delivery]:
        return [Delivery(chat, message.id, "customer", chat, str(chat), 1)]

    try:
        queued = [
            asyncio.create_task(channel.send(broadcast, delivery(broadcast, chat)))
            for chat in range(1, 16)
        ]
        await asyncio.sleep(0)  # the broadcast sends are queued first
        await channel.send(reply, delivery(reply, REPLY_CHAT))
        await asyncio.gather(*queued)
    finally:
        await channel.close()
    order = [chat for _, chat, _ in telegram_sim.sends]
    assert len(order) == 16
    assert order.index(REPLY_CHAT) <= 6  # the first second's slots at most went before it


@pytest.mark.parametrize(
    "changes",
    [
        {"channels": ["telegram", "sms"]},
        {"recipients": {"customer": [1, 2]}},
        {"include_related": True},
        {"typology_selection": {"customer": [1]}},
    ],
)
async def test_only_a_one_person_telegram_message_may_be_a_reply(
    db: Database, changes: dict[str, object]
) -> None:
    """A broadcast cannot borrow the replies' priority by calling itself a reply."""
    composer = Composer(db.sessions, default_registry(), ComposerConfig(), FakeClock())
    request = ComposeRequest(
        channels=["telegram"],
        body="Hello",
        recipients={"customer": [1]},
        include_related=False,
        extra={REPLY_EXTRA_KEY: True},
    )
    for name, value in changes.items():
        setattr(request, name, value)
    with pytest.raises(CompositionError) as refused:
        await composer.presend(User(id=1, is_superuser=True), request)
    assert refused.value.field == "extra.reply"
