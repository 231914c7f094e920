"""What phones send back through Skebby: received SMS, the blacklist and STOP replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from channels.skebby_gateway import OrderState, SkebbyBadRequestError, SkebbyGateway
from sandbox.skebby_simulator import SkebbySimulator
from tests.factories import EpochClock

ANNA = "+393471234567"
BRUNO = "+393471234568"
CARLA = "+393471234569"
SIM_A = "+393400000001"
SIM_B = "+393400000002"


def moment(clock: EpochClock, seconds: float = 0) -> datetime:
    return datetime.fromtimestamp(clock.now + seconds, tz=UTC)


# --------------------------------------------------------------------------- received SMS


async def test_new_received_sms_come_once_per_sim(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """Asking one SIM for new messages does not swallow another SIM's: each comes exactly once."""
    skebby_sim.receive_sms(ANNA, "on A", sim=SIM_A)
    skebby_sim.receive_sms(BRUNO, "on B", sim=SIM_B)
    skebby_sim.receive_sms(CARLA, "on A again", sim=SIM_A)
    assert [m["message"] for m in await skebby_gateway.new_received_sms(id_sims=[SIM_A])] == [
        "on A",
        "on A again",
    ]
    assert [m["message"] for m in await skebby_gateway.new_received_sms()] == ["on B"]
    assert await skebby_gateway.new_received_sms() == []
    skebby_sim.receive_sms(ANNA, "later", sim=SIM_B)
    (latest,) = await skebby_gateway.new_received_sms(id_sims=[SIM_A, SIM_B])
    assert latest == {
        "id_message": "4",
        "id_sim": SIM_B,
        "sender": ANNA,
        "message": "later",
        "sms_date": latest["sms_date"],
        "keyword": "LATER",
    }


async def test_new_received_sms_respects_the_limit(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """At most ``limit`` new messages come per call; the rest come on the next call."""
    for n in range(5):
        skebby_sim.receive_sms(ANNA, f"n{n}")
    assert len(await skebby_gateway.new_received_sms(limit=3)) == 3
    assert [m["message"] for m in await skebby_gateway.new_received_sms(limit=3)] == ["n3", "n4"]


async def test_received_history_window_and_pages(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway, epoch_clock: EpochClock
) -> None:
    """The received history filters by the injected arrival time and SIM, and pages."""
    skebby_sim.receive_sms(ANNA, "last week", sim=SIM_A, at=moment(epoch_clock, -7 * 86400))
    skebby_sim.receive_sms(BRUNO, "yesterday", sim=SIM_A, at=moment(epoch_clock, -86400))
    skebby_sim.receive_sms(CARLA, "today", sim=SIM_B, at=moment(epoch_clock))
    recent = await skebby_gateway.received_sms_history(moment(epoch_clock, -2 * 86400))
    assert recent["total"] == 2 and recent["result"] == "OK"
    only_a = await skebby_gateway.received_sms_history(
        moment(epoch_clock, -30 * 86400), id_sims=[SIM_A]
    )
    assert [m["message"] for m in only_a["srsmshistory"]] == ["last week", "yesterday"]
    first_page = await skebby_gateway.received_sms_history(
        moment(epoch_clock, -30 * 86400), page_size=2
    )
    second_page = await skebby_gateway.received_sms_history(
        moment(epoch_clock, -30 * 86400), page_size=2, page_number=2
    )
    assert len(first_page["srsmshistory"]) == 2 and len(second_page["srsmshistory"]) == 1


async def test_received_after_a_message(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """Messages after a given id on a SIM are listed, the given one excluded."""
    first = skebby_sim.receive_sms(ANNA, "one", sim=SIM_A)
    skebby_sim.receive_sms(BRUNO, "two", sim=SIM_A)
    skebby_sim.receive_sms(CARLA, "elsewhere", sim=SIM_B)
    after = await skebby_gateway.received_sms_after(SIM_A, first.id_message)
    assert [m["message"] for m in after] == ["two"]


async def test_injecting_received_sms_over_the_control_api(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """Another process makes an SMS arrive (from, to SIM, text, time) without a Skebby login."""
    body = {"from": "00393471234567", "to": SIM_B, "text": "Ciao", "time": "2024-05-01T10:00:00Z"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{skebby_sim.control_url}/received", json=body) as response,
    ):
        answer = await response.json()
    assert answer["ok"] is True and answer["message"]["sms_date"] == "20240501100000"
    (message,) = await skebby_gateway.new_received_sms(id_sims=[SIM_B])
    assert message["sender"] == ANNA and message["message"] == "Ciao"


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"text": "x"}, "from"),
        ({"from": ANNA}, "text"),
        ({"from": ANNA, "text": "x", "time": "soon"}, "time"),
    ],
)
async def test_control_api_names_the_bad_field(
    skebby_sim: SkebbySimulator, body: dict[str, str], field_name: str
) -> None:
    """Bad control input answers 400 naming the field, and nothing arrives."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{skebby_sim.control_url}/received", json=body) as response,
    ):
        answer = await response.json()
    assert response.status == 400 and answer["field"] == field_name
    assert skebby_sim.inbound.messages == []


# --------------------------------------------------------------------------- blacklist and STOP


async def test_person_replying_stop_is_blacklisted_by_skebby(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """A STOP reply puts the number on the blacklist (origin STOPSMS); the next send to it ends
    BLACKLISTED and is not billed."""
    skebby_sim.reply_stop(ANNA)
    listing = await skebby_gateway.list_blacklist(origins=["STOPSMS"])
    assert [e["number"] for e in listing["content"]] == [ANNA]
    stops = await skebby_gateway.mo_sms_history("STOP")
    assert stops["total"] == 1 and stops["mosmshistory"][0]["sender"] == ANNA
    result = await skebby_gateway.send_sms(
        "Offer", [ANNA, BRUNO], message_type="GP", order_id="after"
    )
    assert result.total_sent == 1
    status = await skebby_gateway.get_order_state("after")
    assert status.state_of(ANNA) is OrderState.BLACKLISTED
    assert status.state_of(BRUNO) is OrderState.WAITING


async def test_stop_over_the_control_api(skebby_sim: SkebbySimulator) -> None:
    """POST /_sim/stop makes a person answer STOP and says they are now blacklisted."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{skebby_sim.control_url}/stop", json={"from": BRUNO}) as response,
    ):
        answer = await response.json()
    assert answer["blacklisted"] is True and skebby_sim.is_blacklisted(BRUNO)


async def test_stop_without_the_stop_sms_service_only_arrives(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """With the Stop SMS service off, a STOP is just a received message."""
    skebby_sim.stop_sms_service = False
    skebby_sim.reply_stop(ANNA)
    assert not skebby_sim.is_blacklisted(ANNA)
    assert [m["message"] for m in await skebby_gateway.new_received_sms()] == ["STOP"]


async def test_blacklist_add_list_filter_and_remove(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway, epoch_clock: EpochClock
) -> None:
    """Numbers are added one by one or in bulk, listed in pages with filters, and removed."""
    assert await skebby_gateway.blacklist_number(ANNA)
    epoch_clock.now += 3600
    assert await skebby_gateway.blacklist_numbers([ANNA, BRUNO, CARLA]) == 2
    skebby_sim.reply_stop("+393479999999")
    everything = await skebby_gateway.list_blacklist(page_size=3)
    assert everything["totalElements"] == 4 and everything["totalPages"] == 2
    assert len(everything["content"]) == 3
    assert (await skebby_gateway.list_blacklist(origins=["API"]))["totalElements"] == 3
    assert [
        e["number"] for e in (await skebby_gateway.list_blacklist(number="4568"))["content"]
    ] == [BRUNO]
    later = await skebby_gateway.list_blacklist(date_from=moment(epoch_clock, -60))
    assert later["totalElements"] == 3
    assert await skebby_gateway.unblacklist_number(ANNA)
    assert not skebby_sim.is_blacklisted(ANNA)
    assert (await skebby_gateway.list_blacklist())["totalElements"] == 3


async def test_bulk_blacklist_with_a_malformed_number_adds_none(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """One malformed number in a batch: a 400 naming it, and no number is blacklisted."""
    with pytest.raises(SkebbyBadRequestError, match="not-a-number"):
        await skebby_gateway.blacklist_numbers([ANNA, "not-a-number"])
    assert not skebby_sim.is_blacklisted(ANNA)
    with pytest.raises(SkebbyBadRequestError):
        await skebby_gateway.list_blacklist(origins=["FAX"])


async def test_blacklist_date_filter_takes_aware_datetimes(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway, epoch_clock: EpochClock
) -> None:
    """An aware datetime filter is converted to UTC before it is sent."""
    await skebby_gateway.blacklist_number(ANNA)
    rome = datetime.fromtimestamp(epoch_clock.now, tz=UTC).astimezone(ZoneInfo("Europe/Rome"))
    listing = await skebby_gateway.list_blacklist(date_to=rome + timedelta(seconds=1))
    assert listing["totalElements"] == 1
