"""TPOA sender aliases: register, list, read, remove (approval is Skebby's and AGCOM's)."""

from __future__ import annotations

from typing import Any

from channels.skebby.transport import SkebbyApi


class SkebbyAliases(SkebbyApi):
    """The TPOA API."""

    async def create_alias(self, alias: str, **company: str) -> dict[str, Any]:
        """Register a sender alias. ``company`` uses Skebby's keys with '_' for '-', e.g.
        ``company_name``, ``contact_name``, ``contact_surname``, ``vat_number``."""
        body = {"alias": {"alias": alias, **{k.replace("_", "-"): v for k, v in company.items()}}}
        result: dict[str, Any] = await self.transport.call_json(
            "POST", "alias", json=body, ok=(200, 201)
        )
        return result

    async def list_aliases(
        self, *, hide_not_approved: bool = False, page_number: int = 1, page_size: int = 10
    ) -> dict[str, Any]:
        params = {
            "hide-not-approved": hide_not_approved,
            "pageNumber": page_number,
            "pageSize": page_size,
        }
        result: dict[str, Any] = await self.transport.call_json("GET", "alias", params=params)
        return result

    async def get_alias(self, alias_id: str) -> dict[str, Any]:
        result = await self.transport.call_json("GET", f"alias/{alias_id}")
        alias: dict[str, Any] = result.get("alias", result)
        return alias

    async def delete_alias(self, alias_id: str) -> None:
        await self.transport.call("DELETE", f"alias/{alias_id}")
