"""Sent SMS history: ``smshistory``, ``rcptHistory`` and rich SMS link statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.skebby.transport import SkebbyApi
from channels.skebby.wire import date_window


class SkebbyHistory(SkebbyApi):
    """What was sent, when and to whom."""

    async def sms_history(
        self,
        date_from: datetime | str,
        date_to: datetime | str | None = None,
        *,
        timezone: str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        params = {**date_window(date_from, date_to, timezone), "pageNumber": page_number}
        params["pageSize"] = page_size
        result: dict[str, Any] = await self.transport.call_json("GET", "smshistory", params=params)
        return result

    async def recipient_history(
        self,
        recipient: str,
        date_from: datetime | str,
        date_to: datetime | str | None = None,
        *,
        timezone: str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        params = {"recipient": recipient, **date_window(date_from, date_to, timezone)}
        params.update(pageNumber=page_number, pageSize=page_size)
        result: dict[str, Any] = await self.transport.call_json("GET", "rcptHistory", params=params)
        return result

    async def rich_sms_statistics(self, order_id: str) -> dict[str, Any]:
        params = {"order_id": order_id}
        result: dict[str, Any] = await self.transport.call_json(
            "GET", "smsrich/statistics", params=params
        )
        return result
