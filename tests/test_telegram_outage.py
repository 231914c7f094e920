"""Whole-service Telegram outages in the simulator: down, hang and refuse, and their end."""

from __future__ import annotations

import asyncio
import errno
import time

import aiohttp
import pytest
import telegram
from aiohttp import web
from telegram.error import NetworkError, TimedOut

from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import wait_until

ANN = 1001


@pytest.fixture
def sim(telegram_sim: TelegramSimulator) -> TelegramSimulator:
    telegram_sim.add_user(ANN, "Ann")
    return telegram_sim


def bot_url(sim: TelegramSimulator, method: str) -> str:
    return f"{sim.base_url}{sim.token}/{method}"


async def test_down_answers_bad_gateway_until_it_ends(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """While Telegram is down every method answers 502; nothing is sent; then all works again."""
    await sim.set_outage("down")
    with pytest.raises(NetworkError, match="Bad Gateway") as caught:
        await telegram_bot.send_message(ANN, "lost")
    assert not isinstance(caught.value, TimedOut)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await telegram_bot.get_me()
    outage = sim.stats()["outage"]
    assert outage is not None and outage["mode"] == "down" and outage["calls_failed"] == 2
    assert sim.messages_to(ANN) == []
    await sim.set_outage(None)
    await telegram_bot.send_message(ANN, "back")
    assert [m.text for m in sim.messages_to(ANN)] == ["back"]
    assert sim.stats()["outage"] is None


async def test_hang_holds_calls_then_fails_them(
    sim: TelegramSimulator, telegram_bot: telegram.Bot, http_session: aiohttp.ClientSession
) -> None:
    """A hanging Telegram never answers; when it recovers, held calls get 504 and sent nothing."""
    await sim.set_outage("hang")
    with pytest.raises(TimedOut):
        await telegram_bot.send_message(ANN, "into the void", read_timeout=0.2)
    held = asyncio.create_task(
        http_session.post(bot_url(sim, "sendMessage"), json={"chat_id": ANN, "text": "x"})
    )

    async def both_held() -> bool:
        return sim.outage.answered == 2

    await wait_until(both_held, what="both calls reached the hanging simulator")
    assert not held.done()
    await sim.set_outage(None)
    async with await held as response:
        assert response.status == 504
        assert (await response.json())["description"] == "Gateway Timeout"
    assert sim.messages_to(ANN) == []
    await telegram_bot.send_message(ANN, "works again")


async def test_refuse_closes_the_port_and_listens_again_on_it(
    sim: TelegramSimulator, http_session: aiohttp.ClientSession
) -> None:
    """A refusing Telegram refuses connections, cuts open ones, and comes back on the same port."""
    port = sim.port
    async with http_session.post(bot_url(sim, "getMe")) as response:
        assert response.status == 200  # a kept-alive connection now exists
    poll = asyncio.create_task(http_session.post(bot_url(sim, "getUpdates"), json={"timeout": 10}))

    async def polling() -> bool:
        return sim.received_count["getUpdates"] == 1

    await wait_until(polling, what="the long poll reached the simulator")
    await sim.set_outage("refuse")
    with pytest.raises(aiohttp.ClientError):
        await poll  # the long poll in flight is cut, not answered
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await fresh.post(bot_url(sim, "getMe"))
    assert caught.value.os_error.errno == errno.ECONNREFUSED
    async with http_session.get(
        f"{sim.control_url}/stats"
    ) as response:  # the control API still answers
        assert (await response.json())["stats"]["outage"]["mode"] == "refuse"
    await sim.set_outage(None)
    assert sim.port == port
    async with aiohttp.ClientSession() as fresh, fresh.post(bot_url(sim, "getMe")) as response:
        assert response.status == 200


async def test_refuse_seen_by_a_real_bot_client(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """PTB sees a refused Telegram as a network error, and recovers on the same base URL."""
    await telegram_bot.send_message(ANN, "before")
    await sim.set_outage("refuse")
    with pytest.raises(NetworkError):
        await telegram_bot.send_message(ANN, "during")
    await sim.set_outage(None)
    await telegram_bot.send_message(ANN, "after")
    assert [m.text for m in sim.messages_to(ANN)] == ["before", "after"]


@pytest.mark.parametrize("mode", ["down", "hang", "refuse"])
async def test_outage_with_a_duration_ends_by_itself(
    sim: TelegramSimulator, telegram_bot: telegram.Bot, mode: str
) -> None:
    """An outage given seconds ends on its own and the bot can send again."""
    await sim.set_outage(mode, seconds=0.2)
    assert sim.stats()["outage"]["seconds_left"] is not None
    await sim.wait_for_outage_end()
    assert sim.stats()["outage"] is None
    await telegram_bot.send_message(ANN, "recovered")


async def test_outage_over_the_control_api(
    sim: TelegramSimulator, telegram_bot: telegram.Bot, http_session: aiohttp.ClientSession
) -> None:
    """Another process starts and ends an outage over POST /_sim/outage; bad input names a field."""
    async with http_session.post(f"{sim.control_url}/outage", json={"mode": "refuse"}) as response:
        assert (await response.json())["outage"]["mode"] == "refuse"
    with pytest.raises(NetworkError):
        await telegram_bot.get_me()
    async with http_session.post(f"{sim.control_url}/outage", json={"mode": None}) as response:
        assert response.status == 200 and (await response.json())["outage"] is None
    await telegram_bot.get_me()
    for body, field_name in [
        ({"mode": "flaky"}, "mode"),
        ({}, "mode"),
        ({"mode": None, "seconds": 3}, "seconds"),
        ({"mode": "down", "seconds": -1}, "seconds"),
    ]:
        async with http_session.post(f"{sim.control_url}/outage", json=body) as response:
            assert response.status == 400
            assert (await response.json())["field"] == field_name


async def test_webhook_deliveries_wait_for_the_outage_to_end(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """Updates that arrive during an outage reach the webhook only once Telegram is back."""
    arrivals: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        await telegram_bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
        await sim.set_outage("down", seconds=0.3)
        ends = time.monotonic() + 0.3
        await sim.send_text(ANN, "written during the outage")
        (delivery,) = await sim.wait_for_webhook_deliveries(1)
        assert delivery.status == 200
        assert arrivals[0] >= ends - 0.01
    finally:
        await runner.cleanup()


async def test_unknown_outage_mode_is_refused(sim: TelegramSimulator) -> None:
    """set_outage names the modes it knows, and seconds need a mode."""
    with pytest.raises(ValueError, match="down, hang, refuse"):
        await sim.set_outage("flaky")
    with pytest.raises(ValueError, match="seconds"):
        await sim.set_outage(None, seconds=1)
