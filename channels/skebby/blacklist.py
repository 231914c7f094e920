"""The SMS blacklist (Skebby's "Stop SMS"): numbers that must receive no SMS from the account.

Sends to a blacklisted number end ``BLACKLISTED``. With Skebby's Stop SMS service on, a person
who answers STOP is added by Skebby itself (origin ``STOPSMS``); ``list_blacklist`` finds them.
Routes as documented: ``POST blacklist/sms``, ``POST blacklist/smsbatch``, ``GET blacklist/sms``;
removal (``DELETE blacklist/sms``) is not in Skebby's public documentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from channels.skebby.models import QueryValue
from channels.skebby.transport import SkebbyApi
from channels.skebby.wire import paging, skebby_date

BLACKLIST_ORIGINS = ("API", "WEB", "STOPSMS")
BLACKLIST_DATE = "%Y-%m-%d %H:%M:%S"  # the list's date filters, unlike the rest of the API


class SkebbyBlacklist(SkebbyApi):
    """Add, list and remove blacklisted numbers."""

    async def blacklist_number(self, phone_number: str) -> bool:
        """Add a number to the SMS blacklist: later sends to it end ``BLACKLISTED``."""
        params = {"phoneNumber": phone_number}
        reply = await self.transport.call("POST", "blacklist/sms", params=params, ok=(200, 201))
        return reply.text.strip() == "true"

    async def blacklist_numbers(self, phone_numbers: Sequence[str]) -> int:
        """Add many numbers; returns how many were new. One malformed number: none is added."""
        body = list(phone_numbers)
        reply = await self.transport.call("POST", "blacklist/smsbatch", json=body, ok=(200, 201))
        return int(reply.text.strip() or 0)

    async def list_blacklist(
        self,
        *,
        origins: Sequence[str] = (),
        number: str | None = None,
        date_from: datetime | str | None = None,
        date_to: datetime | str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        """One page of the blacklist, optionally only some ``origins`` (API, WEB, STOPSMS), the
        numbers containing ``number``, or those added between two dates."""
        params: dict[str, QueryValue] = paging(page_number, page_size)
        if origins:
            params["origins"] = ",".join(origins)
        if number:
            params["number"] = number
        if date_from is not None:
            params["from"] = skebby_date(date_from, BLACKLIST_DATE)
        if date_to is not None:
            params["to"] = skebby_date(date_to, BLACKLIST_DATE)
        result: dict[str, Any] = await self.transport.call_json(
            "GET", "blacklist/sms", params=params
        )
        return result

    async def unblacklist_number(self, phone_number: str) -> bool:
        params = {"phoneNumber": phone_number}
        reply = await self.transport.call("DELETE", "blacklist/sms", params=params)
        return reply.text.strip() == "true"
