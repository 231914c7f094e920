"""What comes back from phones in the Skebby simulator: received SMS, the blacklist, Stop SMS.

Mixed into :class:`sandbox.skebby_simulator.SkebbySimulator`. Routes as Skebby documents them:

- received SMS: ``GET newsrsmsmessage[/{id_sim}]?limit=`` (each message once, at most 100),
  ``GET srsmshistory[/{id_sim}]?from=&to=&pageNumber=&pageSize=`` (``from`` required),
  ``GET srsmshistory/{id_sim}/{id_message}?limit=`` (the messages after one) and
  ``GET mosmshistory?type=STOP|CONTACT|OTHER``; several SIMs are separated by commas;
- blacklist: ``POST blacklist/sms?phoneNumber=`` (answers ``true``), ``POST blacklist/smsbatch``
  with a JSON array of numbers (answers how many were added; one malformed number and none is
  added), ``GET blacklist/sms`` (paged; filters ``number``, ``origins`` = API, WEB, STOPSMS, and
  ``from``/``to`` as ``yyyy-MM-dd HH:mm:ss``) and ``DELETE blacklist/sms?phoneNumber=`` (Skebby's
  public documentation names no removal call; the simulator assumes this one).

Simulator side: :meth:`SkebbyInboundRoutes.receive_sms` makes an SMS arrive (from, to which SIM,
text, when); :meth:`SkebbyInboundRoutes.reply_stop` makes a person answer STOP, which the Stop SMS
service (``stop_sms_service``, on by default) turns into a blacklist entry of origin STOPSMS, so
later sends to that number end ``BLACKLISTED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    parse_history_date,
    parse_int,
)

DEFAULT_SIM = "+393400000000"
STOP_KEYWORDS = frozenset({"STOP", "ALT", "STOPALL", "UNSUBSCRIBE", "CANCELLA"})
BLACKLIST_ORIGINS = ("API", "WEB", "STOPSMS")
MO_TYPES = ("STOP", "CONTACT", "OTHER")
_BLACKLIST_DATE = "%Y-%m-%d %H:%M:%S"


@dataclass
class InboundSms:
    id_message: int
    id_sim: str
    sender: str
    message: str
    sms_date: datetime
    keyword: str = ""
    mo_type: str = "OTHER"  # STOP, CONTACT or OTHER, for mosmshistory
    fetched: bool = False  # already returned by newsrsmsmessage

    def as_json(self) -> dict[str, Any]:
        return {
            "id_message": str(self.id_message),
            "id_sim": self.id_sim,
            "sender": self.sender,
            "message": self.message,
            "sms_date": fmt_compact(self.sms_date),
            "keyword": self.keyword,
        }


@dataclass
class InboundState:
    messages: list[InboundSms] = field(default_factory=list)
    blacklist: dict[str, dict[str, Any]] = field(default_factory=dict)


def _sim_filter(request: web.Request) -> set[str] | None:
    raw = request.match_info.get("id_sim")
    if not raw:
        return None
    return {normalize_phone(s) or s for s in raw.split(",")}


def _limit(request: web.Request) -> int:
    return min(parse_int(request.query.get("limit"), 100, "limit", 1), 100)


class SkebbyInboundRoutes(SkebbyClock):
    """Received SMS and the blacklist: route handlers and the simulator-side controls."""

    inbound: InboundState
    default_sim: str = DEFAULT_SIM
    stop_sms_service: bool = True

    # ----------------------------------------------------------------- simulator-side API

    def receive_sms(
        self,
        sender: str,
        text: str,
        *,
        sim: str | None = None,
        at: datetime | None = None,
        mo_type: str | None = None,
    ) -> InboundSms:
        """An SMS from ``sender`` arrives on SIM ``sim`` (default ``default_sim``) at ``at``
        (default now). A STOP keyword makes it a STOP message, which the Stop SMS service
        turns into a blacklist entry."""
        if mo_type is not None and mo_type not in MO_TYPES:
            raise ValueError(f"mo_type must be one of {', '.join(MO_TYPES)}")
        number = normalize_phone(sender) or sender
        words = text.split()
        keyword = words[0].upper() if words else ""
        kind = mo_type or ("STOP" if keyword in STOP_KEYWORDS else "OTHER")
        when = (at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)) if at else self.now()
        message = InboundSms(
            id_message=len(self.inbound.messages) + 1,
            id_sim=(normalize_phone(sim) or sim) if sim else self.default_sim,
            sender=number,
            message=text,
            sms_date=when,
            keyword=keyword,
            mo_type=kind,
        )
        self.inbound.messages.append(message)
        if kind == "STOP" and self.stop_sms_service and normalize_phone(number):
            self.blacklist_number(number, origin="STOPSMS")
        return message

    def reply_stop(
        self, sender: str, *, sim: str | None = None, at: datetime | None = None
    ) -> InboundSms:
        """``sender`` answers STOP: with the Stop SMS service on, Skebby blacklists them."""
        return self.receive_sms(sender, "STOP", sim=sim, at=at)

    def blacklist_number(self, number: object, origin: str = "API") -> bool:
        """Put a number on the blacklist (False if it was already there); 400 if malformed."""
        normalized = normalize_phone(number)
        if normalized is None:
            bad_request(f"invalid phone number: {number!r}")
        if normalized in self.inbound.blacklist:
            return False
        self.inbound.blacklist[normalized] = {
            "number": normalized,
            "insertTime": self.now().strftime(_BLACKLIST_DATE),
            "origin": origin,
        }
        return True

    def is_blacklisted(self, number: str) -> bool:
        return (normalize_phone(number) or number) in self.inbound.blacklist

    # ----------------------------------------------------------------- routes

    def inbound_routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        return [
            web.post(p + "blacklist/sms", self._blacklist_add),
            web.post(p + "blacklist/smsbatch", self._blacklist_add_many),
            web.get(p + "blacklist/sms", self._blacklist_list),
            web.delete(p + "blacklist/sms", self._blacklist_remove),
            web.get(p + "newsrsmsmessage", self._new_received),
            web.get(p + "newsrsmsmessage/{id_sim}", self._new_received),
            web.get(p + "srsmshistory", self._received_history),
            web.get(p + "srsmshistory/{id_sim}", self._received_history),
            web.get(p + "srsmshistory/{id_sim}/{id_message}", self._received_after),
            web.get(p + "mosmshistory", self._mo_history),
        ]

    # ----------------------------------------------------------------- blacklist

    async def _blacklist_add(self, request: web.Request) -> web.StreamResponse:
        self.blacklist_number(request.query.get("phoneNumber"))
        return web.Response(text="true")

    async def _blacklist_add_many(self, request: web.Request) -> web.StreamResponse:
        try:
            numbers = await request.json()
        except ValueError:
            bad_request("the body must be a JSON array of phone numbers")
        if not isinstance(numbers, list) or not numbers:
            bad_request("the body must be a non-empty JSON array of phone numbers")
        bad = [n for n in numbers if normalize_phone(n) is None]
        if bad:
            bad_request(f"invalid phone numbers, none was added: {bad!r}")
        added = sum(self.blacklist_number(n) for n in numbers)
        return web.Response(text=str(added))

    def _blacklist_window(self, request: web.Request) -> tuple[str | None, str | None]:
        bounds: list[str | None] = []
        for name in ("from", "to"):
            raw = request.query.get(name)
            if raw:
                try:
                    datetime.strptime(raw, _BLACKLIST_DATE)
                except ValueError:
                    bad_request(f"{name} must be a date as yyyy-MM-dd HH:mm:ss")
            bounds.append(raw or None)
        return bounds[0], bounds[1]

    async def _blacklist_list(self, request: web.Request) -> web.StreamResponse:
        entries = list(self.inbound.blacklist.values())
        origins = request.query.get("origins")
        if origins:
            wanted = set(origins.split(","))
            unknown = wanted - set(BLACKLIST_ORIGINS)
            if unknown:
                bad_request(f"origins must be among {', '.join(BLACKLIST_ORIGINS)}")
            entries = [e for e in entries if e["origin"] in wanted]
        part = request.query.get("number")
        if part:
            entries = [e for e in entries if part.lstrip("+") in e["number"]]
        start, end = self._blacklist_window(request)
        # The dates share one fixed-width format, so comparing the strings compares the times.
        entries = [
            e
            for e in entries
            if (start is None or e["insertTime"] >= start)
            and (end is None or e["insertTime"] <= end)
        ]
        items, number, size = page(request, entries)
        return ok_json(
            {
                "totalElements": len(entries),
                "totalPages": (len(entries) + size - 1) // size,
                "number": number,
                "size": size,
                "content": items,
            }
        )

    async def _blacklist_remove(self, request: web.Request) -> web.StreamResponse:
        number = normalize_phone(request.query.get("phoneNumber"))
        if number is None or number not in self.inbound.blacklist:
            not_found("phone number is not in the blacklist")
        del self.inbound.blacklist[number]
        return web.Response(text="true")

    # ----------------------------------------------------------------- received SMS

    async def _new_received(self, request: web.Request) -> web.StreamResponse:
        sims = _sim_filter(request)
        fresh = [
            m for m in self.inbound.messages if not m.fetched and (sims is None or m.id_sim in sims)
        ][: _limit(request)]
        for message in fresh:
            message.fetched = True
        return ok_json({"result": "OK", "srsmshistory": [m.as_json() for m in fresh]})

    def _in_window(
        self, request: web.Request, items: Sequence[InboundSms], *, required: bool
    ) -> list[InboundSms]:
        raw_start = request.query.get("from")
        if not raw_start and not required:
            return list(items)
        start = parse_history_date(raw_start, "from", None)
        end = parse_history_date(request.query.get("to"), "to", self.now())
        return [m for m in items if start <= m.sms_date <= end]

    async def _received_history(self, request: web.Request) -> web.StreamResponse:
        sims = _sim_filter(request)
        matching = [m for m in self.inbound.messages if sims is None or m.id_sim in sims]
        window = self._in_window(request, matching, required=True)
        items, number, size = page(request, window)
        return ok_json(
            {
                "result": "OK",
                "srsmshistory": [m.as_json() for m in items],
                "pageNumber": number,
                "pageSize": size,
                "total": len(window),
            }
        )

    async def _received_after(self, request: web.Request) -> web.StreamResponse:
        sims = _sim_filter(request)
        after = parse_int(request.match_info["id_message"], 0, "id_message")
        items = [
            m
            for m in self.inbound.messages
            if m.id_message > after and (sims is None or m.id_sim in sims)
        ][: _limit(request)]
        return ok_json({"result": "OK", "srsmshistory": [m.as_json() for m in items]})

    async def _mo_history(self, request: web.Request) -> web.StreamResponse:
        kind = request.query.get("type")
        if kind not in MO_TYPES:
            bad_request("type must be STOP, CONTACT or OTHER")
        matching = [m for m in self.inbound.messages if m.mo_type == kind]
        matching = self._in_window(request, matching, required=False)
        items, number, size = page(request, matching)
        payload = [{**m.as_json(), "type": m.mo_type} for m in items]
        return ok_json(
            {
                "result": "OK",
                "mosmshistory": payload,
                "pageNumber": number,
                "pageSize": size,
                "total": len(matching),
            }
        )
