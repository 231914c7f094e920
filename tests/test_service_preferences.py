"""The running service: SMS answers and STOP fetched by its leader job, unsubscribe links that
point at it and work."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import select

from persistence.models import Message
from persistence.preferences import refuses
from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import running_service, wait_until
from tests.conftest import Database
from tests.factories import make_customers

ANNA = "+393471234567"


async def test_the_service_threads_sms_answers_and_honours_stop(
    db: Database, telegram_sim: TelegramSimulator, skebby_sim: SkebbySimulator, tmp_path: Path
) -> None:
    """With Skebby configured, an answer and a STOP sent to the account reach the person's
    thread, opt them out of SMS and put the number on Skebby's blacklist, with no one asking."""
    skebby_sim.stop_sms_service = False
    (anna,) = await make_customers(db.sessions, 1, sms=ANNA)
    async with running_service(
        db,
        telegram_sim,
        "polling",
        data_dir=tmp_path,
        skebby_username="sandbox",
        skebby_password="sandbox",
        skebby_base_url=skebby_sim.base_url,
        skebby_received_poll_seconds=0.1,
    ):
        skebby_sim.receive_sms(ANNA, "Ricevuto, grazie")
        skebby_sim.receive_sms(ANNA, "Basta")

        async def stopped() -> bool:
            async with db.sessions() as session:
                return await refuses(session, "customer", anna.id, "sms")

        await wait_until(stopped, what="the STOP is recorded")
        await wait_until(
            lambda: _true(skebby_sim.is_blacklisted(ANNA)), what="the number is blacklisted"
        )
    async with db.sessions() as session:
        bodies = sorted(m.body for m in (await session.execute(select(Message))).scalars())
    assert bodies == ["Basta", "Ricevuto, grazie"]


async def _true(value: bool) -> bool:
    return value


async def test_unsubscribe_links_point_at_the_running_service(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Without PUBLIC_BASE_URL the links name the port the service listens on, and a
    one-click POST to one unsubscribes the person."""
    (anna,) = await make_customers(db.sessions, 1, email="anna@example.org")
    async with running_service(db, telegram_sim, "polling", data_dir=tmp_path) as service:
        links = service.unsubscribe
        assert links is not None
        url = links.url("customer", anna.id, "email")
        assert url.startswith(f"http://127.0.0.1:{service.http_port}/unsubscribe/")
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data={"List-Unsubscribe": "One-Click"}) as response,
        ):
            assert response.status == 200
    async with db.sessions() as session:
        assert await refuses(session, "customer", anna.id, "email")
    assert (tmp_path / "unsubscribe_secret").exists()
