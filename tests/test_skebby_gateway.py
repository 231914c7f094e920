"""The async Skebby client against the Skebby simulator: sending, states, errors, auth renewal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from channels.skebby_gateway import (
    Encoding,
    MessageType,
    OrderState,
    SkebbyAuthenticationError,
    SkebbyBadRequestError,
    SkebbyConnectionError,
    SkebbyGateway,
    SkebbyNotFoundError,
    SkebbyServerError,
    SkebbyTimeoutError,
    is_valid_order_id,
    make_order_id,
)
from sandbox.skebby_simulator import SkebbySimulator
from tests.factories import EpochClock

NUMBERS = ["+393471234567", "+393471234568", "+393471234569"]


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock()


@pytest.fixture
async def sim(clock: EpochClock) -> AsyncIterator[SkebbySimulator]:
    async with SkebbySimulator(credits=10_000, clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def gateway(sim: SkebbySimulator) -> AsyncIterator[SkebbyGateway]:
    async with SkebbyGateway(sim.base_url, "sandbox", SecretStr("sandbox"), timeout=5) as client:
        yield client


# --------------------------------------------------------------------------- sending


async def test_send_sms_returns_order_and_billed_credits(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A sent SMS comes back with our order id, the credits billed and the credits left."""
    result = await gateway.send_sms(
        "Hello", NUMBERS[:2], message_type=MessageType.GP, order_id="batch-1", sender="Herald"
    )
    assert result.order_id == "batch-1"
    assert result.total_sent == 2
    assert result.remaining_credits == 10_000 - 2
    assert result.internal_order_id
    assert sim.recipients_of("batch-1") == NUMBERS[:2]


async def test_send_sms_without_order_id_gets_one(gateway: SkebbyGateway) -> None:
    """Skebby generates an order id when we do not give one."""
    result = await gateway.send_sms("Hi", NUMBERS[:1], message_type="TI")
    assert is_valid_order_id(result.order_id)


async def test_long_gsm_message_bills_every_fragment(gateway: SkebbyGateway) -> None:
    """A 161-character GSM message costs two credits per recipient."""
    result = await gateway.send_sms("x" * 161, NUMBERS, message_type=MessageType.TI)
    assert result.total_sent == 6


async def test_ucs2_message_bills_ucs2_fragments(gateway: SkebbyGateway) -> None:
    """A 71-character UCS-2 message costs two credits."""
    result = await gateway.send_sms(
        "ж" * 71, NUMBERS[:1], message_type=MessageType.GP, encoding=Encoding.UCS2
    )
    assert result.total_sent == 2


async def test_non_gsm_text_with_gsm_encoding_is_a_bad_request(gateway: SkebbyGateway) -> None:
    """Text outside GSM-7 sent as gsm is refused with a reason, and is not retried."""
    with pytest.raises(SkebbyBadRequestError) as caught:
        await gateway.send_sms("Привет", NUMBERS[:1], message_type=MessageType.GP)
    assert caught.value.status == 400
    assert not caught.value.transient
    assert "ucs2" in caught.value.details["error"]


async def test_too_long_message_without_truncate_is_refused(gateway: SkebbyGateway) -> None:
    """A message longer than max_fragments with truncate off is a 400 naming max_fragments."""
    with pytest.raises(SkebbyBadRequestError, match="max_fragments"):
        await gateway.send_sms(
            "y" * 200, NUMBERS[:1], message_type="GP", max_fragments=1, truncate=False
        )


async def test_truncated_message_bills_at_most_max_fragments(gateway: SkebbyGateway) -> None:
    """With truncate on, a long message is billed for max_fragments parts only."""
    result = await gateway.send_sms(
        "y" * 400, NUMBERS[:1], message_type="GP", max_fragments=2, truncate=True
    )
    assert result.total_sent == 2


async def test_invalid_recipient_is_a_bad_request(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """An invalid number makes the whole send fail with details, and nothing is billed."""
    with pytest.raises(SkebbyBadRequestError, match="invalid recipient"):
        await gateway.send_sms("Hi", ["+39347", NUMBERS[0]], message_type="GP")
    assert sim.orders == {}
    assert sim.credits["GP"] == 10_000


async def test_allow_invalid_recipients_sends_to_the_valid_ones(gateway: SkebbyGateway) -> None:
    """With allowInvalidRecipients the valid numbers are sent, the invalid ones end INVALIDDST."""
    result = await gateway.send_sms(
        "Hi", ["garbage", NUMBERS[0]], message_type="GP", allow_invalid_recipients=True
    )
    assert result.total_sent == 1
    status = await gateway.get_order_state(result.order_id)
    assert status.state_of("garbage") is OrderState.INVALIDDST
    assert status.state_of(NUMBERS[0]) is OrderState.WAITING


async def test_reused_order_id_is_refused(gateway: SkebbyGateway) -> None:
    """Skebby refuses a second send with an order id already used."""
    await gateway.send_sms("One", NUMBERS[:1], message_type="GP", order_id="same-id")
    with pytest.raises(SkebbyBadRequestError, match="already been used"):
        await gateway.send_sms("Two", NUMBERS[:1], message_type="GP", order_id="same-id")


async def test_malformed_order_id_is_refused_before_sending(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """An order id Skebby would refuse is caught before any request is made."""
    with pytest.raises(ValueError, match="order_id"):
        await gateway.send_sms("Hi", NUMBERS[:1], message_type="GP", order_id="x" * 33)
    assert sim.requests["POST sms"] == 0


async def test_not_enough_credit_is_a_bad_request(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A send costing more credits than left is refused and nothing is billed."""
    sim.credits["SI"] = 1
    with pytest.raises(SkebbyBadRequestError, match="not enough credit"):
        await gateway.send_sms("Hi", NUMBERS[:2], message_type=MessageType.SI)
    assert sim.credits["SI"] == 1


async def test_parametric_sms_renders_each_recipient(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A parametric SMS fills each recipient's placeholders and bills per rendered text."""
    result = await gateway.send_parametric_sms(
        "Hello ${name}, you owe ${amount}",
        {NUMBERS[0]: {"name": "Anna", "amount": "10"}, NUMBERS[1]: {"name": "Bo", "amount": "5"}},
        message_type=MessageType.GP,
        order_id="param-1",
    )
    assert result.total_sent == 2
    rendered = [r.message for r in sim.orders["param-1"].recipients.values()]
    assert rendered == ["Hello Anna, you owe 10", "Hello Bo, you owe 5"]


# --------------------------------------------------------------------------- order state


async def test_order_state_moves_from_waiting_to_delivered(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A fresh order is WAITING; once the network delivers it, it reads DLVRD with a date."""
    await gateway.send_sms("Hi", NUMBERS[:2], message_type="GP", order_id="o-1")
    status = await gateway.get_order_state("o-1")
    assert [r.status for r in status.recipients] == [OrderState.WAITING] * 2
    assert not status.is_final
    sim.advance("o-1")
    status = await gateway.get_order_state("o-1")
    assert all(r.status.is_delivered and r.delivery_date for r in status.recipients)
    assert status.is_final


async def test_unknown_order_is_not_found(gateway: SkebbyGateway) -> None:
    """Asking for an order Skebby never accepted raises a permanent not-found error."""
    with pytest.raises(SkebbyNotFoundError) as caught:
        await gateway.get_order_state("never-sent")
    assert caught.value.status == 404
    assert not caught.value.transient
    assert await gateway.probe_order("never-sent") is None


@pytest.mark.parametrize("state", list(OrderState))
async def test_every_order_state_round_trips(
    sim: SkebbySimulator, gateway: SkebbyGateway, state: OrderState
) -> None:
    """Whatever state Skebby reports for a recipient, the client reads it back exactly."""
    await gateway.send_sms("Hi", NUMBERS[:2], message_type="GP", order_id="states")
    sim.set_state("states", NUMBERS[1], state.value)
    status = await gateway.get_order_state("states")
    assert status.state_of(NUMBERS[1]) is state
    assert status.state_of(NUMBERS[0]) is OrderState.WAITING


async def test_outcome_rule_fails_one_destination(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A destination set to fail ends in that state while the others are delivered."""
    sim.set_outcome(NUMBERS[0], "UNKNRCPT")
    await gateway.send_sms("Hi", NUMBERS[:2], message_type="GP", order_id="mixed")
    sim.advance()
    status = await gateway.get_order_state("mixed")
    assert status.state_of(NUMBERS[0]) is OrderState.UNKNRCPT
    assert OrderState.UNKNRCPT.is_failed
    assert status.state_of(NUMBERS[1]) is OrderState.DLVRD


async def test_blacklisted_number_ends_blacklisted(gateway: SkebbyGateway) -> None:
    """A number on the blacklist is not billed and its delivery ends BLACKLISTED."""
    assert await gateway.blacklist_number(NUMBERS[0])
    result = await gateway.send_sms("Hi", NUMBERS[:2], message_type="GP", order_id="bl")
    assert result.total_sent == 1
    status = await gateway.get_order_state("bl")
    assert status.state_of(NUMBERS[0]) is OrderState.BLACKLISTED


async def test_scheduled_send_can_be_cancelled(
    sim: SkebbySimulator, gateway: SkebbyGateway, clock: EpochClock
) -> None:
    """A send scheduled in the future is SCHEDULED, and deleting it refunds the credits."""
    when = datetime.fromtimestamp(clock.now, tz=UTC) + timedelta(hours=2)
    await gateway.send_sms(
        "Later", NUMBERS[:1], message_type="GP", order_id="sched", scheduled_delivery_time=when
    )
    assert (await gateway.get_order_state("sched")).state_of(NUMBERS[0]) is OrderState.SCHEDULED
    assert sim.credits["GP"] == 9_999
    await gateway.delete_scheduled("sched")
    assert sim.credits["GP"] == 10_000
    with pytest.raises(SkebbyNotFoundError):
        await gateway.get_order_state("sched")


async def test_scheduled_send_goes_out_when_due(
    sim: SkebbySimulator, gateway: SkebbyGateway, clock: EpochClock
) -> None:
    """A scheduled send stays SCHEDULED until its time, then proceeds to delivery."""
    when = datetime.fromtimestamp(clock.now, tz=UTC) + timedelta(minutes=10)
    await gateway.send_sms(
        "Later", NUMBERS[:1], message_type="GP", order_id="due", scheduled_delivery_time=when
    )
    assert sim.advance("due") == 0
    clock.now += 601
    sim.advance("due")
    sim.advance("due")
    assert (await gateway.get_order_state("due")).state_of(NUMBERS[0]) is OrderState.DLVRD


async def test_deleting_an_order_already_sent_is_refused(gateway: SkebbyGateway) -> None:
    """Only scheduled sends can be deleted."""
    await gateway.send_sms("Now", NUMBERS[:1], message_type="GP", order_id="now")
    with pytest.raises(SkebbyBadRequestError, match="not scheduled"):
        await gateway.delete_scheduled("now")


# --------------------------------------------------------------------------- history & user


async def test_sms_and_recipient_history(gateway: SkebbyGateway, clock: EpochClock) -> None:
    """Sent orders appear in the SMS history and in each recipient's history."""
    await gateway.send_sms("A", NUMBERS[:2], message_type="GP", order_id="h-1", sender="Herald")
    await gateway.send_sms("B", NUMBERS[1:], message_type="TI", order_id="h-2")
    since = datetime.fromtimestamp(clock.now - 60, tz=UTC)
    history = await gateway.sms_history(since)
    assert history["total"] == 2
    assert {o["order_id"] for o in history["smshistory"]} == {"h-1", "h-2"}
    first_page = await gateway.sms_history(since, page_size=1)
    assert len(first_page["smshistory"]) == 1
    rcpt = await gateway.recipient_history(NUMBERS[0], since)
    assert [row["order_id"] for row in rcpt["rcpthistory"]] == ["h-1"]
    with pytest.raises(SkebbyBadRequestError):
        await gateway.sms_history("not-a-date")


async def test_rich_sms_statistics(sim: SkebbySimulator, gateway: SkebbyGateway) -> None:
    """Link clicks of a rich SMS are reported per order."""
    await gateway.send_sms(
        "See %RICHURL________%",
        NUMBERS[:2],
        message_type="GP",
        order_id="rich",
        richsms_url="https://example.org/offer",
    )
    sim.record_click("rich", NUMBERS[0])
    stats = await gateway.rich_sms_statistics("rich")
    assert stats["summary"]["link_clicks"] == 1
    assert stats["summary"]["sms_sent"] == 2


async def test_user_status_reports_credits(gateway: SkebbyGateway) -> None:
    """User status gives the SMS left per message type, going down as we send."""
    before = await gateway.user_status()
    assert before.credits(MessageType.GP) == 10_000
    assert before.money is not None
    await gateway.send_sms("Hi", NUMBERS, message_type="GP")
    after = await gateway.user_status(get_money=False)
    assert after.credits("GP") == 9_997
    assert after.credits(MessageType.SI) == 10_000
    assert after.money is None


async def test_dashboard_session_check_and_password_reset(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """Dashboard URL, session check and password change work; later logins use the new one."""
    assert (await gateway.dashboard()).startswith("http")
    assert await gateway.check_session()
    assert await gateway.reset_password(SecretStr("n3w-passw0rd"))
    assert sim.password == "n3w-passw0rd"
    sim.expire_sessions()
    await gateway.user_status()
    assert sim.logins == 2


# --------------------------------------------------------------------------- authentication


async def test_expired_session_is_renewed_once(
    sim: SkebbySimulator, gateway: SkebbyGateway, clock: EpochClock
) -> None:
    """After five idle minutes the session expires; the next call logs in again and succeeds."""
    await gateway.user_status()
    clock.now += 301
    status = await gateway.user_status()
    assert status.credits("GP") == 10_000
    assert sim.logins == 2
    assert sim.requests["GET status"] == 3  # ok, 401, retried ok


async def test_active_session_is_kept_alive(
    sim: SkebbySimulator, gateway: SkebbyGateway, clock: EpochClock
) -> None:
    """Calls within five minutes of each other keep using the same session."""
    for _ in range(3):
        clock.now += 200
        await gateway.user_status()
    assert sim.logins == 1


async def test_wrong_password_is_a_permanent_auth_error(sim: SkebbySimulator) -> None:
    """Wrong credentials raise an authentication error saying they were refused."""
    async with SkebbyGateway(sim.base_url, "sandbox", "wrong") as client:
        with pytest.raises(SkebbyAuthenticationError, match="refused the credentials") as caught:
            await client.send_sms("Hi", NUMBERS[:1], message_type="GP")
    assert not caught.value.transient
    assert sim.logins == 0
    assert sim.requests["POST sms"] == 0


async def test_401_right_after_a_fresh_login_is_permanent(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A 401 on a brand-new session is not retried: the account is refused."""
    sim.fail_next("status", 401, "Unauthorized")
    with pytest.raises(SkebbyAuthenticationError, match="refused"):
        await gateway.user_status()
    assert sim.logins == 1


async def test_401_again_after_relogin_is_permanent(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A stale session gets one re-login; a second 401 is an authentication error."""
    await gateway.user_status()
    sim.fail_next("status", 401, "Unauthorized", count=2)
    with pytest.raises(SkebbyAuthenticationError):
        await gateway.user_status()
    assert sim.logins == 2


async def test_token_auth_survives_session_expiry(sim: SkebbySimulator, clock: EpochClock) -> None:
    """With token auth the client logs in once with GET token and the token never expires."""
    async with SkebbyGateway(sim.base_url, "sandbox", "sandbox", auth="token") as client:
        await client.send_sms("Hi", NUMBERS[:1], message_type="GP")
        clock.now += 3600
        sim.expire_sessions()
        await client.user_status()
    assert sim.requests["GET token"] == 1
    assert sim.requests["GET login"] == 0
    assert sim.sessions == {}


async def test_concurrent_first_calls_log_in_once(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """Twenty concurrent sends share one login."""
    results = await asyncio.gather(
        *(gateway.send_sms("Hi", [NUMBERS[0]], message_type="GP") for _ in range(20))
    )
    assert len({r.order_id for r in results}) == 20
    assert sim.logins == 1
    assert gateway.logins == 1


async def test_concurrent_calls_after_expiry_log_in_again_once(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """Twenty concurrent calls hitting an expired session trigger a single re-login."""
    await gateway.user_status()
    sim.expire_sessions()
    await asyncio.gather(*(gateway.user_status() for _ in range(20)))
    assert sim.logins == 2


async def test_credentials_never_reach_the_logs(
    sim: SkebbySimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the password nor the new password appear in any log line."""
    caplog.set_level(logging.DEBUG)
    async with SkebbyGateway(sim.base_url, "sandbox", "sandbox") as client:
        await client.reset_password("s3cret-new-pass")
        sim.expire_sessions()
        await client.send_sms("Hi", NUMBERS[:1], message_type="GP")
    assert "s3cret-new-pass" not in caplog.text
    assert "sandbox" not in caplog.text.replace("SkebbyGateway", "")
    assert "password=" not in caplog.text


# --------------------------------------------------------------------------- transient failures


async def test_server_error_is_transient(sim: SkebbySimulator, gateway: SkebbyGateway) -> None:
    """A 5xx from Skebby raises a server error the dispatcher may retry."""
    sim.fail_next("sms", 503, "Service Unavailable")
    with pytest.raises(SkebbyServerError) as caught:
        await gateway.send_sms("Hi", NUMBERS[:1], message_type="GP")
    assert caught.value.status == 503
    assert caught.value.transient
    assert sim.orders == {}


async def test_timeout_is_transient(sim: SkebbySimulator) -> None:
    """A call that gets no answer within the timeout raises a transient timeout error."""
    sim.hang_next("status")
    async with SkebbyGateway(sim.base_url, "sandbox", "sandbox", timeout=0.2) as client:
        with pytest.raises(SkebbyTimeoutError) as caught:
            await client.user_status()
    assert caught.value.transient
    assert caught.value.status is None


async def test_connection_refused_is_transient() -> None:
    """No server listening raises a transient connection error."""
    async with SkebbySimulator() as stopped:
        url = stopped.base_url
    async with SkebbyGateway(url, "sandbox", "sandbox", timeout=2) as client:
        with pytest.raises(SkebbyConnectionError) as caught:
            await client.user_status()
    assert caught.value.transient


async def test_dropped_answer_then_probe_finds_the_order(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """When Skebby accepts a batch but the answer is lost, probing the order id finds it."""
    order_id = make_order_id("message-7/batch-0")
    sim.drop_answer_next("sms")
    with pytest.raises(SkebbyConnectionError) as caught:
        await gateway.send_sms("Hi", NUMBERS, message_type="GP", order_id=order_id)
    assert caught.value.transient
    found = await gateway.probe_order(order_id)
    assert found is not None
    assert [r.destination for r in found.recipients] == NUMBERS


async def test_502_after_acceptance_then_probe_finds_the_order(
    sim: SkebbySimulator, gateway: SkebbyGateway
) -> None:
    """A proxy 502 after Skebby accepted the batch is transient, and the order exists."""
    sim.drop_answer_next("sms", mode="502")
    with pytest.raises(SkebbyServerError):
        await gateway.send_sms("Hi", NUMBERS[:1], message_type="GP", order_id="lost-502")
    assert await gateway.probe_order("lost-502") is not None


def test_make_order_id_is_deterministic_and_valid() -> None:
    """Order ids derived from a batch are stable, distinct and acceptable to Skebby."""
    first = make_order_id("message-1/batch-3")
    assert first == make_order_id("message-1/batch-3")
    assert first != make_order_id("message-1/batch-4")
    assert len(first) <= 32 and is_valid_order_id(first)
    assert make_order_id("x", prefix="").isalnum()
    with pytest.raises(ValueError):
        make_order_id("x", prefix="bad prefix!")


# --------------------------------------------------------------------------- account APIs


async def test_contacts_and_groups(gateway: SkebbyGateway) -> None:
    """Contacts and groups can be created, linked, listed, changed and deleted."""
    group_id = await gateway.create_group("Customers", description="all of them")
    contact_id = await gateway.add_contact(NUMBERS[0], email="a@example.org", name="Anna")
    contact = await gateway.get_contact(contact_id)
    assert contact["phoneNumber"] == NUMBERS[0] and contact["name"] == "Anna"
    await gateway.add_contact_to_group(contact_id, group_id)
    groups = await gateway.list_groups()
    assert groups["groups"][0]["total"] == 1
    await gateway.update_group(group_id, name="Clients")
    assert (await gateway.list_groups())["groups"][0]["name"] == "Clients"
    await gateway.remove_contact_from_group(contact_id, group_id)
    assert (await gateway.get_contact(contact_id))["groupIds"] == []
    added = await gateway.add_contacts([{"phoneNumber": n} for n in NUMBERS])
    assert added == 2  # the first number already exists
    assert (await gateway.list_contacts(page_size=50))["total"] == 3
    await gateway.delete_contact(contact_id)
    with pytest.raises(SkebbyNotFoundError):
        await gateway.get_contact(contact_id)
    await gateway.delete_group(group_id)
    assert (await gateway.list_groups())["total"] == 0


async def test_blacklist_management(gateway: SkebbyGateway) -> None:
    """Numbers can be blacklisted one by one or in bulk, listed and removed."""
    assert await gateway.blacklist_number(NUMBERS[0])
    assert await gateway.blacklist_numbers(NUMBERS) == 2
    listing = await gateway.list_blacklist(page_size=10)
    assert listing["totalElements"] == 3
    assert await gateway.unblacklist_number(NUMBERS[0])
    assert (await gateway.list_blacklist())["totalElements"] == 2
    with pytest.raises(SkebbyBadRequestError):
        await gateway.blacklist_number("not-a-number")


async def test_received_sms(
    sim: SkebbySimulator, gateway: SkebbyGateway, clock: EpochClock
) -> None:
    """Inbound SMS are listed once as new, stay in the history, and STOP replies are kept apart."""
    first = sim.receive_sms(NUMBERS[0], "Hello there")
    sim.receive_sms(NUMBERS[1], "STOP", mo_type="STOP")
    new = await gateway.new_received_sms()
    assert [m["message"] for m in new] == ["Hello there", "STOP"]
    assert await gateway.new_received_sms() == []
    since = datetime.fromtimestamp(clock.now - 60, tz=UTC)
    history = await gateway.received_sms_history(since, id_sims=[sim.default_sim])
    assert history["total"] == 2
    after = await gateway.received_sms_after(sim.default_sim, first.id_message)
    assert [m["sender"] for m in after] == [NUMBERS[1]]
    stops = await gateway.mo_sms_history("STOP")
    assert stops["total"] == 1
    assert sim.is_blacklisted(NUMBERS[1])


async def test_tpoa_aliases(sim: SkebbySimulator, gateway: SkebbyGateway) -> None:
    """Sender aliases can be registered, listed, read and removed."""
    created = await gateway.create_alias(
        "Herald",
        company_name="ACME",
        contact_name="Anna",
        contact_surname="Rossi",
        vat_number="IT01234567890",
    )
    alias_id = str(created["id"])
    assert (await gateway.get_alias(alias_id))["alias"] == "Herald"
    assert (await gateway.list_aliases(hide_not_approved=True))["total"] == 0
    sim.approve_alias("Herald")
    assert (await gateway.list_aliases(hide_not_approved=True))["total"] == 1
    await gateway.delete_alias(alias_id)
    with pytest.raises(SkebbyNotFoundError):
        await gateway.get_alias(alias_id)
    with pytest.raises(SkebbyBadRequestError, match="missing alias fields"):
        await gateway.create_alias("Other")


async def test_subaccounts_and_credit_moves(sim: SkebbySimulator, gateway: SkebbyGateway) -> None:
    """Subaccounts can be managed and receive credits moved from the superaccount."""
    sub_id = await gateway.create_subaccount("branch", "branch-pass1", "b@example.org", name="B")
    assert (await gateway.list_subaccounts())["total"] == 1
    await gateway.update_subaccount(sub_id, name="Branch")
    sub = await gateway.get_subaccount(sub_id)
    assert sub["name"] == "Branch" and "password" not in sub
    await gateway.change_subaccount_password(sub_id, "branch-pass2")
    purchase = await gateway.create_subaccount_purchase(sub_id, {"GP": 100})
    assert await gateway.subaccount_credits(sub_id) == {"GP": 100}
    assert sim.credits["GP"] == 9_900
    assert (await gateway.subaccount_purchases(sub_id))["total"] == 1
    await gateway.delete_subaccount_purchase(sub_id, str(purchase["id-purchase"]))
    assert sim.credits["GP"] == 10_000
    with pytest.raises(SkebbyBadRequestError, match="not enough"):
        await gateway.create_subaccount_purchase(sub_id, {"GP": 10**9})


async def test_two_factor_authentication(sim: SkebbySimulator, gateway: SkebbyGateway) -> None:
    """A texted PIN verifies once; a wrong PIN reports the tries left."""
    await gateway.request_2fa_pin(NUMBERS[0], message_body="Code: %PIN%", expiry_minutes=5)
    pin = sim.last_2fa_pin(NUMBERS[0])
    assert pin is not None and len(pin) == 6
    wrong = "000000" if pin != "000000" else "111111"
    failed = await gateway.verify_2fa_pin(NUMBERS[0], wrong)
    assert not failed.valid and failed.tries_remaining == 2
    assert (await gateway.verify_2fa_pin(NUMBERS[0], pin)).valid
    assert not (await gateway.verify_2fa_pin(NUMBERS[0], pin)).valid


async def test_landing_pages(sim: SkebbySimulator, gateway: SkebbyGateway) -> None:
    """Published landing pages are listed."""
    sim.add_landing("Promo")
    names = [page["name"] for page in await gateway.list_landing_pages()]
    assert names == ["Sandbox landing", "Promo"]


async def test_shared_http_session_is_left_open(sim: SkebbySimulator) -> None:
    """A gateway built on the caller's aiohttp session does not close it."""
    async with aiohttp.ClientSession() as shared:
        async with SkebbyGateway(sim.base_url, "sandbox", "sandbox", session=shared) as client:
            await client.login()
            assert await client.check_session()
        assert not shared.closed
