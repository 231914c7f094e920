"""``/link CODE`` in the bot, end to end (the real Service against the Telegram simulator): a
Herald user links their own chat with a one-time code, which works once and only in time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.runner import Service
from channels.clock import utc_now
from persistence.models import User
from persistence.user_addresses import new_link_code
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import MODES, Person, running_service
from tests.conftest import Database


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4242:test-token-for-herald") as simulator:
        yield simulator


@pytest.fixture(params=MODES)
async def service(
    request: pytest.FixtureRequest, db: Database, sim: TelegramSimulator
) -> AsyncIterator[Service]:
    async with running_service(db, sim, request.param) as running:
        yield running


async def _user_with_code(db: Database, *, age: timedelta = timedelta(0)) -> tuple[int, str]:
    async with db.sessions.begin() as session:
        user = User(username="maria")
        session.add(user)
        await session.flush()
        code = await new_link_code(session, user.id, utc_now() - age)
        return user.id, code


async def _chat_of(db: Database, user_id: int) -> int | None:
    async with db.sessions() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user.telegram_chat_id


async def test_link_with_a_fresh_code_links_my_chat_once(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """/link with the code links this chat to the user (not a recipient: the gate lets it
    through); the same code a second time, or a wrong one, is refused."""
    user_id, code = await _user_with_code(db)
    maria = Person(sim, 601, "Maria")
    linked = await maria.say(f"/link {code.lower()}")
    assert "Linked" in (linked.text or "") and "maria" in (linked.text or "")
    assert await _chat_of(db, user_id) == 601
    other = Person(sim, 602, "Someone")
    reused = await other.say(f"/link {code}")
    assert "unknown, used or expired" in (reused.text or "")
    wrong = await other.say("/link ZZZZZZZZ")
    assert "unknown, used or expired" in (wrong.text or "")
    usage = await other.say("/link")
    assert "/link AB3D5F7H" in (usage.text or "")
    assert await _chat_of(db, user_id) == 601


async def test_an_expired_code_is_refused(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """A code older than ten minutes links nothing."""
    user_id, code = await _user_with_code(db, age=timedelta(minutes=11))
    reply = await Person(sim, 603, "Late").say(f"/link {code}")
    assert "unknown, used or expired" in (reply.text or "")
    assert await _chat_of(db, user_id) is None
