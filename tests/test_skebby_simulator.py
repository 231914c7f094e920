"""The Skebby simulator at the HTTP level: what the API answers, faults, counters, scale."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from channels.skebby_gateway import OrderState, SkebbyGateway, SkebbyTimeoutError, make_order_id
from sandbox.skebby_simulator import ORDER_STATES, SkebbySimulator, count_fragments
from tests.factories import EpochClock

NUMBER = "+393471234567"


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
async def sim(clock: EpochClock) -> AsyncIterator[SkebbySimulator]:
    async with SkebbySimulator(credits=1000, clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def login(sim: SkebbySimulator, http: aiohttp.ClientSession) -> dict[str, str]:
    auth = aiohttp.encode_basic_auth("sandbox", "sandbox")
    async with http.get(sim.base_url + "login", headers={"Authorization": auth}) as response:
        assert response.status == 200
        user_key, session_key = (await response.text()).split(";")
    return {"user_key": user_key, "Session_key": session_key}


async def post_sms(
    sim: SkebbySimulator, http: aiohttp.ClientSession, headers: dict[str, str], **body: Any
) -> tuple[int, str]:
    payload = {"message_type": "GP", "message": "Hi", "recipient": [NUMBER], **body}
    async with http.post(sim.base_url + "sms", json=payload, headers=headers) as response:
        return response.status, await response.text()


# --------------------------------------------------------------------------- fragments


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, "gsm", 1),
        ("a" * 161, "gsm", 2),
        ("a" * 306, "gsm", 2),
        ("a" * 307, "gsm", 3),
        ("€" * 80, "gsm", 1),  # extension characters take two septets
        ("€" * 81, "gsm", 2),
        ("a" * 152 + "€", "gsm", 1),
        ("ж" * 70, "ucs2", 1),
        ("ж" * 71, "ucs2", 2),
        ("ж" * 134, "ucs2", 2),
        ("ж" * 135, "ucs2", 3),
    ],
)
def test_fragments_are_counted_like_skebby(text: str, encoding: str, parts: int) -> None:
    """SMS parts follow GSM-7 160/153 (extension chars count 2) and UCS-2 70/67."""
    assert count_fragments(text, encoding) == parts


# --------------------------------------------------------------------------- authentication


async def test_login_by_query_and_basic_auth(
    sim: SkebbySimulator, http: aiohttp.ClientSession
) -> None:
    """Login works with the documented query parameters and with HTTP basic auth."""
    query = {"username": "sandbox", "password": "sandbox"}
    async with http.get(sim.base_url + "login", params=query) as response:
        assert response.status == 200
        assert (await response.text()).startswith(sim.user_key + ";")
    await login(sim, http)
    async with http.get(sim.base_url + "token", params=query) as response:
        assert response.status == 200
    assert sim.logins == 3


async def test_wrong_credentials_and_missing_keys_are_401(
    sim: SkebbySimulator, http: aiohttp.ClientSession
) -> None:
    """Bad credentials, missing or wrong keys all answer 401."""
    query = {"username": "sandbox", "password": "nope"}
    async with http.get(sim.base_url + "login", params=query) as response:
        assert response.status == 401
    async with http.get(sim.base_url + "status") as response:
        assert response.status == 401
    headers = {"user_key": sim.user_key, "Session_key": "forged"}
    async with http.get(sim.base_url + "status", headers=headers) as response:
        assert response.status == 401


async def test_session_expires_after_idle_ttl(
    sim: SkebbySimulator, http: aiohttp.ClientSession, clock: EpochClock
) -> None:
    """A session idle longer than session_ttl answers 401; checksession does not renew it."""
    headers = await login(sim, http)
    clock.now += 299
    async with http.get(sim.base_url + "checksession", headers=headers) as response:
        assert await response.text() == "true"
    clock.now += 2  # 301 s since the last renewing call
    async with http.get(sim.base_url + "checksession", headers=headers) as response:
        assert await response.text() == "false"
    async with http.get(sim.base_url + "status", headers=headers) as response:
        assert response.status == 401


# --------------------------------------------------------------------------- sending


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"recipient": []}, "recipient"),
        ({"message_type": "XX"}, "message_type"),
        ({"message": ""}, "message"),
        ({"order_id": "x" * 33}, "order_id"),
        ({"order_id": "bad id!"}, "order_id"),
        ({"recipient": ["12"]}, "invalid recipient"),
        ({"message_type": "SI", "sender": "Herald"}, "sender"),
        ({"encoding": "latin1"}, "encoding"),
        ({"scheduled_delivery_time": "tomorrow"}, "scheduled_delivery_time"),
        ({"returnCredits": "maybe"}, "returnCredits"),
    ],
)
async def test_invalid_sends_are_400_with_details(
    sim: SkebbySimulator, http: aiohttp.ClientSession, body: dict[str, Any], reason: str
) -> None:
    """Each kind of invalid send is a 400 whose body names the problem."""
    status, text = await post_sms(sim, http, await login(sim, http), **body)
    assert status == 400
    assert reason in text
    assert sim.orders == {}


async def test_send_answer_shape(sim: SkebbySimulator, http: aiohttp.ClientSession) -> None:
    """POST sms answers 201 with result, order_id, total_sent and internal_order_id."""
    headers = await login(sim, http)
    status, text = await post_sms(sim, http, headers, order_id="shape", returnRemaining="true")
    assert status == 201
    assert '"result": "OK"' in text and '"order_id": "shape"' in text
    assert '"remaining_credits": 999' in text and "internal_order_id" in text


async def test_parametric_send_missing_parameter_is_400(
    sim: SkebbySimulator, http: aiohttp.ClientSession
) -> None:
    """A parametric send whose recipient lacks a placeholder value is refused."""
    payload = {
        "message_type": "GP",
        "message": "Hi ${name}",
        "recipients": [{"recipient": NUMBER, "surname": "Rossi"}],
    }
    headers = await login(sim, http)
    async with http.post(sim.base_url + "paramsms", json=payload, headers=headers) as response:
        assert response.status == 400
        assert "name" in await response.text()


async def test_auto_advance_delivers_on_poll(clock: EpochClock) -> None:
    """With auto_advance each poll moves the order one step, so WAITING becomes DLVRD."""
    async with (
        SkebbySimulator(auto_advance=True, clock=clock) as simulator,
        SkebbyGateway(simulator.base_url, "sandbox", "sandbox") as gateway,
    ):
        await gateway.send_sms("Hi", [NUMBER], message_type="GP", order_id="auto")
        status = await gateway.get_order_state("auto")
    assert status.state_of(NUMBER) is OrderState.DLVRD


def test_simulator_knows_every_documented_state() -> None:
    """The simulator and the client agree on the sixteen Skebby order states."""
    assert set(ORDER_STATES) == {state.value for state in OrderState}


async def test_set_state_rejects_unknown_states(sim: SkebbySimulator) -> None:
    """set_state refuses a state Skebby does not have."""
    with pytest.raises(ValueError, match="unknown"):
        sim.set_state("any", NUMBER, "DELIVERED")


# --------------------------------------------------------------------------- faults & counters


async def test_fail_next_hits_only_matching_requests(
    sim: SkebbySimulator, http: aiohttp.ClientSession
) -> None:
    """fail_next answers the given status for the next matching requests only."""
    headers = await login(sim, http)
    sim.fail_next("sms", 500, "boom", count=2)
    assert (await post_sms(sim, http, headers))[0] == 500
    assert (await post_sms(sim, http, headers))[0] == 500
    assert (await post_sms(sim, http, headers))[0] == 201
    assert sim.requests["POST sms"] == 3
    assert len(sim.orders) == 1


async def test_fault_rate_is_reproducible(
    sim: SkebbySimulator, http: aiohttp.ClientSession
) -> None:
    """A seeded 5xx rate fails the same requests on every run."""
    headers = await login(sim, http)

    async def run() -> list[int]:
        sim.set_fault_rate(0.5, seed=7, path_prefix="status")
        codes = []
        for _ in range(20):
            async with http.get(sim.base_url + "status", headers=headers) as response:
                codes.append(response.status)
        return codes

    first, second = await run(), await run()
    assert first == second
    assert {200, 503} == set(first)


async def test_reset_forgets_everything(sim: SkebbySimulator, http: aiohttp.ClientSession) -> None:
    """reset() clears orders, sessions, counters and faults and restores the credits."""
    headers = await login(sim, http)
    await post_sms(sim, http, headers)
    sim.fail_next("status", 500)
    sim.reset()
    assert sim.orders == {} and sim.logins == 0 and sim.credits["GP"] == 1000
    assert sum(sim.requests.values()) == 0
    async with http.get(sim.base_url + "status", headers=headers) as response:
        assert response.status == 401  # the old session is gone, and the fault too


async def test_latency_delays_answers(sim: SkebbySimulator) -> None:
    """With latency set above the client timeout, calls time out."""
    sim.set_latency(1.0)
    async with SkebbyGateway(sim.base_url, "sandbox", "sandbox", timeout=0.1) as gateway:
        with pytest.raises(SkebbyTimeoutError, match="timed out"):
            await gateway.user_status()


# --------------------------------------------------------------------------- scale


async def test_hundred_thousand_recipients_in_full_batches() -> None:
    """100,000 recipients in batches of 1000 are accepted quickly and every batch is full."""
    numbers = [f"+3934{n:08d}" for n in range(100_000)]
    started = time.perf_counter()
    async with (
        SkebbySimulator(credits=200_000) as simulator,
        SkebbyGateway(simulator.base_url, "sandbox", "sandbox") as gateway,
    ):
        for start in range(0, len(numbers), 1000):
            batch = numbers[start : start + 1000]
            order_id = make_order_id(f"bench/{start}")
            await gateway.send_sms("Hello", batch, message_type="GP", order_id=order_id)
        sizes = {len(order.recipients) for order in simulator.orders.values()}
        assert len(simulator.orders) == 100 and sizes == {1000}
        assert simulator.credits["GP"] == 100_000
        assert simulator.logins == 1
    assert time.perf_counter() - started < 30
