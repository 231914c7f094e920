"""Received SMS on the account's SIMs: new ones (each once), history, after an id, MO."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from channels.skebby.models import MoType
from channels.skebby.transport import SkebbyApi
from channels.skebby.wire import date_window


class SkebbyReceived(SkebbyApi):
    """The received SMS API."""

    async def new_received_sms(
        self, *, id_sims: Sequence[str] = (), limit: int = 100
    ) -> list[dict[str, Any]]:
        """Messages received since the previous call (at most ``limit``, max 100)."""
        path = "newsrsmsmessage" + (f"/{','.join(id_sims)}" if id_sims else "")
        result = await self.transport.call_json("GET", path, params={"limit": limit})
        messages: list[dict[str, Any]] = result.get("srsmshistory", [])
        return messages

    async def received_sms_history(
        self,
        date_from: datetime | str,
        date_to: datetime | str | None = None,
        *,
        id_sims: Sequence[str] = (),
        timezone: str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        path = "srsmshistory" + (f"/{','.join(id_sims)}" if id_sims else "")
        params = {**date_window(date_from, date_to, timezone), "pageNumber": page_number}
        params["pageSize"] = page_size
        result: dict[str, Any] = await self.transport.call_json("GET", path, params=params)
        return result

    async def received_sms_after(
        self, id_sim: str, id_message: int | str, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Messages received on ``id_sim`` after message ``id_message``."""
        path = f"srsmshistory/{id_sim}/{id_message}"
        result = await self.transport.call_json("GET", path, params={"limit": limit})
        messages: list[dict[str, Any]] = result.get("srsmshistory", [])
        return messages

    async def mo_sms_history(
        self,
        mo_type: MoType,
        *,
        date_from: datetime | str | None = None,
        date_to: datetime | str | None = None,
        timezone: str | None = None,
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        """Mobile-originated messages of a type (STOP, CONTACT or OTHER)."""
        params = {"type": mo_type, **date_window(date_from, date_to, timezone)}
        params.update(pageNumber=page_number, pageSize=page_size)
        result: dict[str, Any] = await self.transport.call_json(
            "GET", "mosmshistory", params=params
        )
        return result
