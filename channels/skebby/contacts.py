"""The address book: contacts and contact groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from channels.skebby.transport import SkebbyApi
from channels.skebby.wire import id_from_location, paging


class SkebbyContacts(SkebbyApi):
    """Contacts and contact groups."""

    async def add_contact(
        self,
        phone_number: str,
        *,
        email: str | None = None,
        name: str | None = None,
        surname: str | None = None,
        group_ids: Sequence[str] = (),
        **fields: str,
    ) -> str:
        """Add a contact to the address book; returns its id. ``fields``: gender, fax, address,
        city, province, birthdate, promotiondate, rememberdate, zip, custom1..custom10."""
        body: dict[str, Any] = {"phoneNumber": phone_number, "groupIds": list(group_ids), **fields}
        for key, value in (("email", email), ("name", name), ("surname", surname)):
            if value is not None:
                body[key] = value
        reply = await self.transport.call("POST", "contact", json=body, ok=(200, 201))
        return id_from_location(reply)

    async def add_contacts(
        self, contacts: Sequence[Mapping[str, Any]], *, update_existing: bool = False
    ) -> int:
        """Add many contacts (Skebby field names, e.g. ``phoneNumber``); returns how many."""
        body = {"contacts": [dict(c) for c in contacts], "updateExistingContact": update_existing}
        reply = await self.transport.call("POST", "contacts", json=body, ok=(200, 201))
        return int(reply.text.strip() or 0)

    async def get_contact(self, contact_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.transport.call_json("GET", f"contact/{contact_id}")
        return result

    async def list_contacts(self, *, page_number: int = 1, page_size: int = 10) -> dict[str, Any]:
        params = paging(page_number, page_size)
        result: dict[str, Any] = await self.transport.call_json("GET", "contacts", params=params)
        return result

    async def delete_contact(self, contact_id: str) -> None:
        await self.transport.call("DELETE", f"contact/{contact_id}")

    async def add_contact_to_group(self, contact_id: str, group_id: str) -> None:
        await self.transport.call("POST", f"contact/{contact_id}/group/{group_id}", ok=(200, 201))

    async def remove_contact_from_group(self, contact_id: str, group_id: str) -> None:
        await self.transport.call("DELETE", f"contact/{contact_id}/group/{group_id}")

    # ----------------------------------------------------------------- contact groups

    async def create_group(self, name: str, *, description: str = "") -> str:
        """Create a contacts group; returns its id."""
        body = {"name": name, "description": description}
        reply = await self.transport.call("POST", "group", json=body, ok=(200, 201))
        return id_from_location(reply)

    async def list_groups(self, *, page_number: int = 1, page_size: int = 10) -> dict[str, Any]:
        params = paging(page_number, page_size)
        result: dict[str, Any] = await self.transport.call_json("GET", "groups", params=params)
        return result

    async def update_group(
        self, group_id: str, *, name: str | None = None, description: str | None = None
    ) -> None:
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        await self.transport.call("PUT", f"group/{group_id}", json=body)

    async def delete_group(self, group_id: str) -> None:
        await self.transport.call("DELETE", f"group/{group_id}")
