"""Orders in the Skebby simulator: ``POST sms`` / ``POST paramsms``, order states, history.

Mixed into :class:`sandbox.skebby_simulator.SkebbySimulator`. Sending validates like Skebby
(message type, sender, encoding, order id, schedule, recipients, credit), bills fragments per
recipient and records one :class:`SimOrder`; a parametric send renders ``${Param}`` per recipient
and bills each rendered text. Numbers on the blacklist are not billed and end ``BLACKLISTED``.
Tests move deliveries along with ``advance``, ``set_state`` and ``set_outcome``.

The GSM-7 tables and :func:`count_fragments` here are an independent oracle for
``channels/sms_text.py``: written apart on purpose, never import one from the other.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from sandbox.skebby_http import (
    API_PREFIX,
    SkebbyClock,
    bad_request,
    fmt_compact,
    normalize_phone,
    not_found,
    ok_json,
    page,
    parse_bool,
    parse_history_date,
    parse_int,
    read_json,
)
from sandbox.skebby_simulator_inbound import InboundState

MESSAGE_TYPES = ("GP", "TI", "SI")
ORDER_STATES = (
    "WAITING", "WAIT4DLVR", "SENT", "DLVRD", "TOOM4USER", "TOOM4NUM", "ERROR", "TIMEOUT",
    "UNKNRCPT", "UNKNPFX", "DEMO", "SCHEDULED", "INVALIDDST", "BLACKLISTED", "KO",
    "INVALIDCONTENTS",
)  # fmt: skip
PENDING_STATES = frozenset({"WAITING", "WAIT4DLVR", "SENT", "SCHEDULED"})
DEFAULT_PROGRESSION: Mapping[str, str] = {"SCHEDULED": "WAITING", "WAITING": "DLVRD"}

_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_PLACEHOLDER_RE = re.compile(r"\$\{([^}]+)\}")
_PARAMSMS_LIMITS = {"gsm": 1000, "ucs2": 450}  # characters of one rendered parametric message
_SCHEDULE_FORMATS = (
    "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M.0",
    "%d%m%y%H%M", "%Y%m%d", "%d%m%y",
)  # fmt: skip

# GSM 03.38 default alphabet (one septet each) and its extension table (two septets each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def count_fragments(text: str, encoding: str = "gsm") -> int:
    """Number of SMS parts Skebby bills for ``text``.

    GSM-7: 160 septets in one part, 153 per part when concatenated, extension characters take
    two septets and are never split across parts. UCS-2: 70 code units, 67 per part, surrogate
    pairs never split.
    """
    if encoding == "gsm":
        widths = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, multi = 160, 153
    else:
        widths = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = 70, 67
    total = sum(widths)
    if total <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > multi:
            parts, used = parts + 1, 0
        used += width
    return parts


def _render(template: str, params: Mapping[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda match: params[match.group(1)], template)


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class SimRecipient:
    destination: str
    status: str
    fragments: int
    delivery_date: datetime | None = None
    message: str | None = None  # the rendered text, for parametric sends


@dataclass(slots=True)
class SimOrder:
    order_id: str
    internal_order_id: str
    kind: Literal["sms", "paramsms"]
    message_type: str
    message: str
    sender: str
    encoding: str
    created: datetime
    scheduled: datetime | None
    recipients: dict[str, SimRecipient]
    credits_used: int
    campaign_name: str = ""
    richsms_url: str | None = None
    deleted: bool = False
    clicks: Counter[str] = field(default_factory=Counter)


class SkebbyOrderRoutes(SkebbyClock):
    """Sending, order states and the SMS history; the simulator supplies the state."""

    credits: dict[str, int]
    orders: dict[str, SimOrder]
    outcomes: dict[str, str]
    progression: dict[str, str]
    auto_advance: bool
    inbound: InboundState
    _internal_ids: int

    def order_routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        return [
            web.post(p + "sms", self._send_sms),
            web.post(p + "paramsms", self._send_paramsms),
            web.get(p + "sms/{order_id}", self._order_state),
            web.delete(p + "sms/{order_id}", self._delete_order),
            web.get(p + "smshistory", self._sms_history),
            web.get(p + "rcptHistory", self._rcpt_history),
            web.get(p + "smsrich/statistics", self._rich_statistics),
        ]

    # ----------------------------------------------------------------- order inspection & control

    def set_state(self, order_id: str, destination: str, state: str) -> None:
        """Force the delivery state of one recipient of an order."""
        if state not in ORDER_STATES:
            raise ValueError(f"unknown Skebby order state {state!r}")
        recipient = self.orders[order_id].recipients[normalize_phone(destination) or destination]
        self._move(recipient, state)

    def set_outcome(self, destination: str, state: str) -> None:
        """Make every future delivery to ``destination`` end in ``state`` when it advances."""
        if state not in ORDER_STATES:
            raise ValueError(f"unknown Skebby order state {state!r}")
        self.outcomes[normalize_phone(destination) or destination] = state

    def advance(self, order_id: str | None = None) -> int:
        """Move pending recipients one step along ``progression`` (scheduled ones only once
        their time has come). Returns how many recipients changed state."""
        orders = [self.orders[order_id]] if order_id is not None else list(self.orders.values())
        now, changed = self.now(), 0
        for order in orders:
            if order.deleted:
                continue
            for recipient in order.recipients.values():
                target = self.progression.get(recipient.status)
                if target is None:
                    continue
                if recipient.status == "SCHEDULED" and order.scheduled and order.scheduled > now:
                    continue
                if target not in self.progression:
                    target = self.outcomes.get(recipient.destination, target)
                self._move(recipient, target)
                changed += 1
        return changed

    def _move(self, recipient: SimRecipient, state: str) -> None:
        recipient.status = state
        recipient.delivery_date = None if state in PENDING_STATES else self.now()

    def record_click(self, order_id: str, destination: str) -> None:
        """Simulate a recipient opening the rich SMS link of an order."""
        self.orders[order_id].clicks[normalize_phone(destination) or destination] += 1

    def recipients_of(self, order_id: str) -> list[str]:
        return list(self.orders[order_id].recipients)

    # ----------------------------------------------------------------- sending

    def _parse_schedule(self, data: Mapping[str, Any]) -> datetime | None:
        raw = data.get("scheduled_delivery_time")
        if raw in (None, ""):
            return None
        zone = data.get("scheduled_delivery_timezone")
        if zone not in (None, "", "UTC", "Etc/UTC", "GMT"):
            bad_request("the simulator only understands the UTC scheduled_delivery_timezone")
        for fmt in _SCHEDULE_FORMATS:
            try:
                return datetime.strptime(str(raw), fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
        bad_request("scheduled_delivery_time has an invalid format")

    def _common(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the fields ``sms`` and ``paramsms`` share."""
        message_type = data.get("message_type")
        if message_type not in MESSAGE_TYPES:
            bad_request("message_type must be one of GP, TI, SI")
        message = data.get("message")
        if not isinstance(message, str) or not message:
            bad_request("message is required")
        sender = data.get("sender") or ""
        if not isinstance(sender, str):
            bad_request("sender must be a string")
        if sender and message_type == "SI":
            bad_request("message type SI does not allow a custom sender")
        encoding = data.get("encoding") or "gsm"
        if encoding not in {"gsm", "ucs2"}:
            bad_request("encoding must be gsm or ucs2")
        order_id = data.get("order_id")
        if order_id is None:
            order_id = uuid.uuid4().hex
        elif not isinstance(order_id, str) or not _ORDER_ID_RE.match(order_id):
            bad_request("order_id must be at most 32 letters, digits, '_', '.' or '-'")
        elif order_id in self.orders:
            bad_request(f"order_id {order_id} has already been used")
        max_fragments = parse_int(data.get("max_fragments"), 7, "max_fragments", 1)
        return {
            "message_type": message_type,
            "message": message,
            "sender": sender,
            "encoding": encoding,
            "order_id": order_id,
            "scheduled": self._parse_schedule(data),
            "max_fragments": max_fragments,
            "truncate": parse_bool(data.get("truncate"), True, "truncate"),
            "return_credits": parse_bool(data.get("returnCredits"), False, "returnCredits"),
            "return_remaining": parse_bool(data.get("returnRemaining"), False, "returnRemaining"),
            "allow_invalid": parse_bool(
                data.get("allowInvalidRecipients"), False, "allowInvalidRecipients"
            ),
            "campaign_name": str(data.get("campaign_name") or ""),
            "richsms_url": data.get("richsms_url") or data.get("short_link_url"),
        }

    def _fragments(self, text: str, opts: Mapping[str, Any]) -> int:
        if opts["encoding"] == "gsm" and not is_gsm7(text):
            bad_request("message contains characters outside GSM-7: use encoding ucs2")
        fragments = count_fragments(text, opts["encoding"])
        if fragments > opts["max_fragments"]:
            if not opts["truncate"]:
                bad_request(
                    f"message needs {fragments} fragments, more than max_fragments "
                    f"{opts['max_fragments']}, and truncate is false"
                )
            fragments = opts["max_fragments"]
        return fragments

    def _record(
        self,
        kind: Literal["sms", "paramsms"],
        opts: Mapping[str, Any],
        recipients: dict[str, SimRecipient],
        invalid: list[str],
    ) -> web.StreamResponse:
        """Charge credits, store the order and answer like Skebby does (201)."""
        if not recipients and not invalid:
            bad_request("recipient list is empty")
        now = self.now()
        scheduled = opts["scheduled"] if opts["scheduled"] and opts["scheduled"] > now else None
        charged = [r for r in recipients.values() if r.destination not in self.inbound.blacklist]
        used = sum(r.fragments for r in charged)
        kind_credits = self.credits[opts["message_type"]]
        if used > kind_credits:
            bad_request(f"not enough credit: {used} needed, {kind_credits} available")
        self.credits[opts["message_type"]] = kind_credits - used
        for recipient in recipients.values():
            if recipient.destination in self.inbound.blacklist:
                recipient.status, recipient.delivery_date = "BLACKLISTED", now
            else:
                recipient.status = "SCHEDULED" if scheduled else "WAITING"
        for number in invalid:
            recipients[number] = SimRecipient(number, "INVALIDDST", 0, now)
        self._internal_ids += 1
        order = SimOrder(
            order_id=opts["order_id"],
            internal_order_id=f"{now:%Y%m%d%H%M%S}{self._internal_ids:08d}",
            kind=kind,
            message_type=opts["message_type"],
            message=opts["message"],
            sender=opts["sender"],
            encoding=opts["encoding"],
            created=now,
            scheduled=scheduled,
            recipients=recipients,
            credits_used=used,
            campaign_name=opts["campaign_name"],
            richsms_url=opts["richsms_url"],
        )
        self.orders[order.order_id] = order
        answer: dict[str, Any] = {
            "result": "OK",
            "order_id": order.order_id,
            "total_sent": used if opts["return_credits"] else len(charged),
            "internal_order_id": order.internal_order_id,
        }
        if opts["return_remaining"]:
            answer["remaining_credits"] = self.credits[opts["message_type"]]
        return ok_json(answer, status=201)

    def _destination(self, raw: object, opts: Mapping[str, Any], invalid: list[str]) -> str | None:
        number = normalize_phone(raw)
        if number is None:
            if not opts["allow_invalid"]:
                bad_request(f"invalid recipient: {raw!r}")
            invalid.append(str(raw))
        return number

    async def _send_sms(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        opts = self._common(data)
        raw = data.get("recipient")
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            bad_request("recipient must be a non-empty list of phone numbers")
        fragments = self._fragments(opts["message"], opts)
        recipients: dict[str, SimRecipient] = {}
        invalid: list[str] = []
        for item in raw:
            number = self._destination(item, opts, invalid)
            if number is not None:
                recipients[number] = SimRecipient(number, "WAITING", fragments)
        return self._record("sms", opts, recipients, invalid)

    async def _send_paramsms(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        opts = self._common(data)
        raw = data.get("recipients", data.get("recipient"))
        items = list(raw.values()) if isinstance(raw, dict) else raw
        if not isinstance(items, list) or not items:
            bad_request("recipients must be a non-empty list of recipient objects")
        recipients: dict[str, SimRecipient] = {}
        invalid: list[str] = []
        for item in items:
            if not isinstance(item, dict):
                bad_request("every recipient must be an object with a 'recipient' field")
            number = self._destination(item.get("recipient"), opts, invalid)
            if number is None:
                continue
            params = {str(k): str(v) for k, v in item.items() if k != "recipient"}
            missing = sorted(set(_PLACEHOLDER_RE.findall(opts["message"])) - params.keys())
            if missing:
                bad_request(f"recipient {number} misses parameters: {', '.join(missing)}")
            text = _render(opts["message"], params)
            limit = _PARAMSMS_LIMITS[opts["encoding"]]
            if len(text) > limit:
                bad_request(f"message for {number} exceeds {limit} characters once rendered")
            recipients[number] = SimRecipient(number, "WAITING", self._fragments(text, opts))
            recipients[number].message = text
        return self._record("paramsms", opts, recipients, invalid)

    # ----------------------------------------------------------------- orders & history

    def _order(self, order_id: str) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None or order.deleted:
            not_found(f"order_id {order_id} not found")
        return order

    async def _order_state(self, request: web.Request) -> web.StreamResponse:
        order = self._order(request.match_info["order_id"])
        if self.auto_advance:
            self.advance(order.order_id)
        recipients = [
            {
                "destination": r.destination,
                "status": r.status,
                "delivery_date": r.delivery_date.strftime("%Y-%m-%d %H:%M:%S")
                if r.delivery_date
                else None,
            }
            for r in order.recipients.values()
        ]
        return ok_json(
            {"recipient_number": len(recipients), "result": "OK", "recipients": recipients}
        )

    async def _delete_order(self, request: web.Request) -> web.StreamResponse:
        order = self._order(request.match_info["order_id"])
        unsendable = {"SCHEDULED", "BLACKLISTED", "INVALIDDST"}
        gone = any(r.status not in unsendable for r in order.recipients.values())
        if order.scheduled is None or gone:
            bad_request("the order is not scheduled or has already been sent")
        order.deleted = True
        self.credits[order.message_type] += order.credits_used
        return ok_json({"result": "OK"})

    def _history_window(self, request: web.Request) -> list[SimOrder]:
        start = parse_history_date(request.query.get("from"), "from", None)
        end = parse_history_date(request.query.get("to"), "to", self.now())
        chosen = [o for o in self.orders.values() if not o.deleted and start <= o.created <= end]
        return sorted(chosen, key=lambda o: o.created, reverse=True)

    @staticmethod
    def _history_item(order: SimOrder) -> dict[str, Any]:
        return {
            "order_id": order.order_id,
            "create_time": fmt_compact(order.created),
            "schedule_time": fmt_compact(order.scheduled or order.created),
            "message_type": order.message_type,
            "sender": order.sender,
            "campaign_name": order.campaign_name,
            "num_recipients": len(order.recipients),
        }

    async def _sms_history(self, request: web.Request) -> web.StreamResponse:
        orders = self._history_window(request)
        items, number, size = page(request, orders)
        return ok_json(
            {
                "total": len(orders),
                "pageNumber": number,
                "pageSize": size,
                "smshistory": [self._history_item(o) for o in items],
            }
        )

    async def _rcpt_history(self, request: web.Request) -> web.StreamResponse:
        recipient = normalize_phone(request.query.get("recipient"))
        if recipient is None:
            bad_request("recipient is required and must be an international number")
        rows = []
        for order in self._history_window(request):
            entry = order.recipients.get(recipient)
            if entry is not None:
                rows.append(
                    {
                        **self._history_item(order),
                        "destination": recipient,
                        "status": entry.status,
                        "delivery_date": fmt_compact(entry.delivery_date)
                        if entry.delivery_date
                        else None,
                    }
                )
        items, number, size = page(request, rows)
        return ok_json(
            {"total": len(rows), "pageNumber": number, "pageSize": size, "rcpthistory": items}
        )

    async def _rich_statistics(self, request: web.Request) -> web.StreamResponse:
        order = self._order(request.query.get("order_id") or "")
        if not order.richsms_url:
            bad_request("the order has no rich SMS link")
        clicks = order.clicks
        return ok_json(
            {
                "summary": {
                    "sms_sent": len(order.recipients),
                    "link_clicks": sum(clicks.values()),
                    "unique_clicks": len(clicks),
                },
                "details": [
                    {"destination": dest, "clicks": count} for dest, count in sorted(clicks.items())
                ],
            }
        )
