"""Subaccounts of a superaccount, and the credits moved to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.skebby.transport import SkebbyApi
from channels.skebby.wire import paging


class SkebbySubaccounts(SkebbyApi):
    """The subaccount API."""

    async def list_subaccounts(
        self, *, page_number: int = 1, page_size: int = 10
    ) -> dict[str, Any]:
        params = paging(page_number, page_size)
        result: dict[str, Any] = await self.transport.call_json("GET", "subaccounts", params=params)
        return result

    async def create_subaccount(
        self,
        login: str,
        password: str,
        email: str,
        *,
        credit_eater: bool = True,
        **fields: Any,
    ) -> str:
        """Create a subaccount (needs a superaccount); returns its id."""
        body = {
            "login": login,
            "password": password,
            "email": email,
            "credit-eater": credit_eater,
            **{k.replace("_", "-"): v for k, v in fields.items()},
        }
        result = await self.transport.call_json("POST", "subaccount", json=body, ok=(200, 201))
        return str(result["idSubaccount"])

    async def get_subaccount(self, subaccount_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.transport.call_json(
            "GET", f"subaccount/{subaccount_id}"
        )
        return result

    async def update_subaccount(self, subaccount_id: str, **fields: Any) -> None:
        body = {k.replace("_", "-"): v for k, v in fields.items()}
        await self.transport.call("PUT", f"subaccount/{subaccount_id}", json=body)

    async def change_subaccount_password(self, subaccount_id: str, password: str) -> None:
        path = f"subaccount/{subaccount_id}/changepwd"
        await self.transport.call(
            "POST", path, json={"passwd": password}, ok=(200, 201), sensitive=True
        )

    async def subaccount_credits(self, subaccount_id: str) -> dict[str, int]:
        """Available credits of a subaccount per message type."""
        result = await self.transport.call_json("GET", f"subaccount/{subaccount_id}/credit")
        return {c["message-type"]: int(c["amount"]) for c in result.get("credits", [])}

    async def subaccount_purchases(
        self, subaccount_id: str, *, page_number: int = 1, page_size: int = 10
    ) -> dict[str, Any]:
        params = paging(page_number, page_size)
        path = f"subaccount/{subaccount_id}/purchase"
        result: dict[str, Any] = await self.transport.call_json("GET", path, params=params)
        return result

    async def create_subaccount_purchase(
        self, subaccount_id: str, quantities: Mapping[str, int]
    ) -> dict[str, Any]:
        """Move credits (message type -> quantity) from this superaccount to a subaccount."""
        body = {"purchases": [{"message-type": t, "quantity": q} for t, q in quantities.items()]}
        path = f"subaccount/{subaccount_id}/purchase"
        result: dict[str, Any] = await self.transport.call_json(
            "POST", path, json=body, ok=(200, 201)
        )
        return result

    async def delete_subaccount_purchase(self, subaccount_id: str, purchase_id: str) -> None:
        await self.transport.call("DELETE", f"subaccount/{subaccount_id}/purchase/{purchase_id}")
