"""Parametric SMS (``POST paramsms``) behave like ``POST sms``, one rendered text per recipient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channels.skebby_gateway import (
    Encoding,
    OrderState,
    SkebbyBadRequestError,
    SkebbyGateway,
    SkebbyNotFoundError,
)
from sandbox.skebby_simulator import SkebbySimulator
from tests.factories import EpochClock

ANNA = "+393471234567"
BRUNO = "+393471234568"


async def test_fragments_are_counted_on_each_rendered_text(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """A long value makes only that recipient's SMS two fragments; the bill adds them up."""
    result = await skebby_gateway.send_parametric_sms(
        "Dear ${name}, ${note}",
        {ANNA: {"name": "Anna", "note": "ok"}, BRUNO: {"name": "Bruno", "note": "x" * 160}},
        message_type="GP",
        order_id="param-fragments",
    )
    assert result.total_sent == 3 and result.remaining_credits == 997
    recipients = skebby_sim.orders["param-fragments"].recipients
    assert recipients[ANNA].message == "Dear Anna, ok" and recipients[ANNA].fragments == 1
    assert recipients[BRUNO].fragments == 2


async def test_order_states_per_recipient(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """A parametric order is followed like any order: per recipient, to delivery or failure."""
    skebby_sim.blacklist_number(BRUNO)
    skebby_sim.set_outcome(ANNA, "DLVRD")
    await skebby_gateway.send_parametric_sms(
        "Hi ${name}",
        {ANNA: {"name": "Anna"}, BRUNO: {"name": "Bruno"}},
        message_type="GP",
        order_id="param-states",
    )
    first = await skebby_gateway.get_order_state("param-states")
    assert first.state_of(ANNA) is OrderState.WAITING
    assert first.state_of(BRUNO) is OrderState.BLACKLISTED
    skebby_sim.advance("param-states")
    assert (await skebby_gateway.get_order_state("param-states")).is_final
    assert skebby_sim.credits["GP"] == 999  # the blacklisted recipient was not billed


async def test_order_id_rules_are_shared_with_sms(skebby_gateway: SkebbyGateway) -> None:
    """An order id used by an sms cannot be reused by a paramsms, and the reverse."""
    await skebby_gateway.send_sms("Hi", [ANNA], message_type="GP", order_id="shared-id")
    with pytest.raises(SkebbyBadRequestError, match="already been used"):
        await skebby_gateway.send_parametric_sms(
            "Hi ${n}", {ANNA: {"n": "A"}}, message_type="GP", order_id="shared-id"
        )


async def test_scheduled_parametric_send_can_be_cancelled(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway, epoch_clock: EpochClock
) -> None:
    """A scheduled parametric send is SCHEDULED, refunded when deleted, then unknown."""
    when = datetime.fromtimestamp(epoch_clock.now, tz=UTC) + timedelta(hours=1)
    await skebby_gateway.send_parametric_sms(
        "Later ${n}",
        {ANNA: {"n": "A"}},
        message_type="GP",
        order_id="param-later",
        scheduled_delivery_time=when,
    )
    status = await skebby_gateway.get_order_state("param-later")
    assert status.state_of(ANNA) is OrderState.SCHEDULED
    await skebby_gateway.delete_scheduled("param-later")
    assert skebby_sim.credits["GP"] == 1000
    with pytest.raises(SkebbyNotFoundError):
        await skebby_gateway.get_order_state("param-later")


@pytest.mark.parametrize(
    ("recipients", "options", "reason"),
    [
        ({ANNA: {"surname": "Rossi"}}, {}, "misses parameters: n"),
        ({ANNA: {"n": "Привет"}}, {}, "ucs2"),
        ({ANNA: {"n": "x" * 1001}}, {}, "exceeds 1000 characters"),
        ({ANNA: {"n": "ж" * 451}}, {"encoding": Encoding.UCS2}, "exceeds 450 characters"),
        ({"garbage": {"n": "x"}}, {}, "invalid recipient"),
    ],
)
async def test_invalid_parametric_sends_are_refused(
    skebby_sim: SkebbySimulator,
    skebby_gateway: SkebbyGateway,
    recipients: dict[str, dict[str, str]],
    options: dict[str, Any],
    reason: str,
) -> None:
    """A missing value, a non-GSM value, an over-long rendered text or a bad number is a 400."""
    with pytest.raises(SkebbyBadRequestError, match=reason):
        await skebby_gateway.send_parametric_sms(
            "Hi ${n}", recipients, message_type="GP", **options
        )
    assert skebby_sim.orders == {} and skebby_sim.credits["GP"] == 1000


async def test_ucs2_parametric_send_bills_ucs2_fragments(skebby_gateway: SkebbyGateway) -> None:
    """With encoding ucs2 each rendered text is billed at 70/67 code units per fragment."""
    result = await skebby_gateway.send_parametric_sms(
        "${n}", {ANNA: {"n": "ж" * 71}}, message_type="GP", encoding=Encoding.UCS2
    )
    assert result.total_sent == 2


async def test_unknown_send_option_is_refused_before_sending(
    skebby_sim: SkebbySimulator, skebby_gateway: SkebbyGateway
) -> None:
    """A misspelt option raises TypeError and no request reaches Skebby."""
    with pytest.raises(TypeError, match="sendr"):
        await skebby_gateway.send_sms("Hi", [ANNA], message_type="GP", sendr="Herald")  # type: ignore[call-arg]
    assert skebby_sim.requests["POST sms"] == 0
