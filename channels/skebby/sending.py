"""Sending SMS: ``POST sms``, ``POST paramsms``, order states and scheduled sends.

Sending carries our own ``order_id`` (see :func:`make_order_id`), so after a crash or a lost
answer :meth:`SkebbySending.probe_order` tells whether Skebby accepted a batch before resending.
The options both send calls take are one definition, :class:`SendOptions`.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict, Unpack

from channels.skebby.errors import SkebbyException, SkebbyNotFoundError
from channels.skebby.models import (
    Encoding,
    MessageType,
    OrderState,
    OrderStatus,
    RecipientState,
    SendResult,
)
from channels.skebby.transport import SkebbyApi
from channels.skebby.wire import parse_delivery_date, skebby_date

_ORDER_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,32}")


def is_valid_order_id(order_id: str) -> bool:
    return _ORDER_ID_RE.fullmatch(order_id) is not None


def make_order_id(seed: str, prefix: str = "hrd-") -> str:
    """A valid Skebby order id (≤32 chars of [A-Za-z0-9_.-]) derived deterministically from
    ``seed``, so a crashed batch can be looked up again by the same id."""
    if len(prefix) > 12 or (prefix and not is_valid_order_id(prefix)):
        raise ValueError("prefix must be at most 12 characters of [A-Za-z0-9_.-]")
    return (prefix + hashlib.sha256(seed.encode()).hexdigest())[:32]


class SendOptions(TypedDict, total=False):
    """What ``sms`` and ``paramsms`` accept besides the message and its recipients.

    ``scheduled_delivery_time``: a send in the future (an aware datetime is sent in UTC);
    ``return_credits`` (default True): ``total_sent`` counts billed credits, fragments x
    recipients; ``richsms_url`` fills ``%RICHURL________%``, ``id_landing`` ``%PAGESLINK____%``.
    """

    sender: str | None
    order_id: str | None
    scheduled_delivery_time: datetime | str | None
    scheduled_delivery_timezone: str | None
    encoding: Encoding | str | None
    max_fragments: int | None
    truncate: bool | None
    return_credits: bool
    allow_invalid_recipients: bool | None
    campaign_name: str | None
    richsms_url: str | None
    id_landing: int | None


_OPTIONAL_FIELDS = {
    "sender": "sender",
    "order_id": "order_id",
    "max_fragments": "max_fragments",
    "truncate": "truncate",
    "allow_invalid_recipients": "allowInvalidRecipients",
    "campaign_name": "campaign_name",
    "richsms_url": "richsms_url",
    "id_landing": "id_landing",
}


def send_body(
    message: str, message_type: MessageType | str, options: SendOptions
) -> dict[str, Any]:
    """The JSON body both send calls share, checked before anything is sent."""
    unknown = sorted(set(options) - SendOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"unknown Skebby send options: {', '.join(unknown)}")
    order_id = options.get("order_id")
    if order_id is not None and not is_valid_order_id(order_id):
        raise ValueError("order_id must be at most 32 characters of [A-Za-z0-9_.-]")
    body: dict[str, Any] = {
        "message_type": str(MessageType(message_type)),
        "message": message,
        "returnCredits": options.get("return_credits", True),
        "returnRemaining": True,
    }
    when = options.get("scheduled_delivery_time")
    if when is not None:
        body["scheduled_delivery_time"] = skebby_date(when)
        zone = options.get("scheduled_delivery_timezone")
        aware = isinstance(when, datetime) and when.tzinfo is not None
        if zone is not None or aware:
            body["scheduled_delivery_timezone"] = zone or "UTC"
    encoding = options.get("encoding")
    if encoding is not None:
        body["encoding"] = str(Encoding(encoding))
    for key, field in _OPTIONAL_FIELDS.items():
        value = options.get(key)
        if value is not None:
            body[field] = value
    return body


class SkebbySending(SkebbyApi):
    """Send SMS and follow their orders."""

    async def _post_send(self, path: str, body: dict[str, Any]) -> SendResult:
        result = await self.transport.call_json("POST", path, json=body, ok=(200, 201))
        if result.get("result") != "OK":
            raise SkebbyException(f"Skebby {path} did not answer OK", body=jsonlib.dumps(result))
        remaining = result.get("remaining_credits")
        internal = result.get("internal_order_id")
        return SendResult(
            order_id=str(result["order_id"]),
            total_sent=int(result.get("total_sent", 0)),
            remaining_credits=int(remaining) if remaining is not None else None,
            internal_order_id=str(internal) if internal is not None else None,
        )

    async def send_sms(
        self,
        message: str,
        recipients: Iterable[str],
        *,
        message_type: MessageType | str,
        **options: Unpack[SendOptions],
    ) -> SendResult:
        """``POST sms``: one message to E.164 ``recipients``. With ``return_credits`` the
        result's ``total_sent`` counts billed credits (fragments x recipients)."""
        body = send_body(message, message_type, options)
        body["recipient"] = list(recipients)
        if not body["recipient"]:
            raise ValueError("recipients must not be empty")
        return await self._post_send("sms", body)

    async def send_parametric_sms(
        self,
        message: str,
        recipients: Mapping[str, Mapping[str, str]],
        *,
        message_type: MessageType | str,
        **options: Unpack[SendOptions],
    ) -> SendResult:
        """``POST paramsms``: ``message`` has ``${Name}`` placeholders; ``recipients`` maps each
        E.164 number to its parameter values. Skebby bills each rendered text's fragments."""
        body = send_body(message, message_type, options)
        if not recipients:
            raise ValueError("recipients must not be empty")
        body["recipients"] = {
            str(index): {**params, "recipient": number}
            for index, (number, params) in enumerate(recipients.items())
        }
        return await self._post_send("paramsms", body)

    async def get_order_state(self, order_id: str) -> OrderStatus:
        """``GET sms/{order_id}``; raises :class:`SkebbyNotFoundError` for an unknown order."""
        result = await self.transport.call_json("GET", f"sms/{order_id}")
        states: list[RecipientState] = []
        for item in result.get("recipients", []):
            try:
                status = OrderState(item["status"])
            except ValueError:
                raise SkebbyException(
                    f"Skebby reported an unknown order state {item['status']!r}",
                    body=jsonlib.dumps(item),
                ) from None
            date = parse_delivery_date(item.get("delivery_date"))
            states.append(RecipientState(str(item["destination"]), status, date))
        return OrderStatus(order_id=order_id, recipients=tuple(states))

    async def probe_order(self, order_id: str) -> OrderStatus | None:
        """The order's state, or None when Skebby never accepted it (safe to resend)."""
        try:
            return await self.get_order_state(order_id)
        except SkebbyNotFoundError:
            return None

    async def delete_scheduled(self, order_id: str) -> None:
        """Cancel a scheduled send that has not gone out yet."""
        await self.transport.call("DELETE", f"sms/{order_id}")
