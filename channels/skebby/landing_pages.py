"""Published landing pages (for ``%PAGESLINK____%`` in a send)."""

from __future__ import annotations

from typing import Any

from channels.skebby.transport import SkebbyApi


class SkebbyLandingPages(SkebbyApi):
    """The landing pages API."""

    async def list_landing_pages(self) -> list[dict[str, Any]]:
        result = await self.transport.call_json("GET", "landings")
        landings: list[dict[str, Any]] = result.get("landings", [])
        return landings
