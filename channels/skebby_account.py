"""Skebby account APIs: contacts, groups, blacklist, received SMS, TPOA aliases, subaccounts,
two-factor authentication and landing pages.

:class:`SkebbyAccountMixin` is mixed into :class:`channels.skebby_gateway.SkebbyGateway`, which
provides the authenticated transport (``_call`` / ``_call_json``), errors and retries. Shapes whose
fields are loose in Skebby's documentation are returned as plain dicts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

QueryValue = str | int | float | bool | None
MoType = Literal["STOP", "CONTACT", "OTHER"]


@dataclass(frozen=True, slots=True)
class SkebbyReply:
    """One HTTP answer from Skebby (status already accepted by the caller)."""

    status: int
    text: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TwoFactorResult:
    """Outcome of ``POST 2fa/verify``: ``valid`` when the PIN matched."""

    valid: bool
    tries_remaining: int | None = None
    error: str | None = None


def skebby_date(value: datetime | str) -> str:
    """Skebby's ``yyyyMMddHHmmss``; aware datetimes are converted to UTC first."""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y%m%d%H%M%S")


def _window(
    date_from: datetime | str | None, date_to: datetime | str | None, timezone: str | None
) -> dict[str, QueryValue]:
    params: dict[str, QueryValue] = {}
    if date_from is not None:
        params["from"] = skebby_date(date_from)
    if date_to is not None:
        params["to"] = skebby_date(date_to)
    aware = any(isinstance(d, datetime) and d.tzinfo is not None for d in (date_from, date_to))
    if timezone is not None or aware:
        params["timezone"] = timezone or "UTC"
    return params


def _id_from_location(reply: SkebbyReply) -> str:
    location = reply.headers.get("Location", "")
    return location.rstrip("/").rsplit("/", 1)[-1]


class SkebbyAccountMixin:
    """Everything besides sending SMS and the user status."""

    # Provided by SkebbyGateway.
    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        ok: Collection[int] = (200,),
        sensitive: bool = False,
    ) -> SkebbyReply:
        raise NotImplementedError

    async def _call_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        ok: Collection[int] = (200,),
    ) -> Any:
        raise NotImplementedError

    # ----------------------------------------------------------------- contacts

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
        reply = await self._call("POST", "contact", json=body, ok=(200, 201))
        return _id_from_location(reply)

    async def add_contacts(
        self, contacts: Sequence[Mapping[str, Any]], *, update_existing: bool = False
    ) -> int:
        """Add many contacts (Skebby field names, e.g. ``phoneNumber``); returns how many."""
        body = {"contacts": [dict(c) for c in contacts], "updateExistingContact": update_existing}
        reply = await self._call("POST", "contacts", json=body, ok=(200, 201))
        return int(reply.text.strip() or 0)

    async def get_contact(self, contact_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call_json("GET", f"contact/{contact_id}")
        return result

    async def list_contacts(self, *, page_number: int = 1, page_size: int = 10) -> dict[str, Any]:
        params = {"pageNumber": page_number, "pageSize": page_size}
        result: dict[str, Any] = await self._call_json("GET", "contacts", params=params)
        return result

    async def delete_contact(self, contact_id: str) -> None:
        await self._call("DELETE", f"contact/{contact_id}")

    async def add_contact_to_group(self, contact_id: str, group_id: str) -> None:
        await self._call("POST", f"contact/{contact_id}/group/{group_id}", ok=(200, 201))

    async def remove_contact_from_group(self, contact_id: str, group_id: str) -> None:
        await self._call("DELETE", f"contact/{contact_id}/group/{group_id}")

    # ----------------------------------------------------------------- contact groups

    async def create_group(self, name: str, *, description: str = "") -> str:
        """Create a contacts group; returns its id."""
        body = {"name": name, "description": description}
        reply = await self._call("POST", "group", json=body, ok=(200, 201))
        return _id_from_location(reply)

    async def list_groups(self, *, page_number: int = 1, page_size: int = 10) -> dict[str, Any]:
        params = {"pageNumber": page_number, "pageSize": page_size}
        result: dict[str, Any] = await self._call_json("GET", "groups", params=params)
        return result

    async def update_group(
        self, group_id: str, *, name: str | None = None, description: str | None = None
    ) -> None:
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        await self._call("PUT", f"group/{group_id}", json=body)

    async def delete_group(self, group_id: str) -> None:
        await self._call("DELETE", f"group/{group_id}")

    # ----------------------------------------------------------------- blacklist

    async def blacklist_number(self, phone_number: str) -> bool:
        """Add a number to the SMS blacklist: later sends to it end ``BLACKLISTED``."""
        params = {"phoneNumber": phone_number}
        reply = await self._call("POST", "blacklist/contact", params=params, ok=(200, 201))
        return reply.text.strip() == "true"

    async def blacklist_numbers(self, phone_numbers: Sequence[str]) -> int:
        """Add many numbers to the blacklist; returns how many were new."""
        body = {"phoneNumbers": list(phone_numbers)}
        reply = await self._call("POST", "blacklist/contacts", json=body, ok=(200, 201))
        return int(reply.text.strip() or 0)

    async def list_blacklist(
        self,
        *,
        origins: Sequence[str] = (),
        page_number: int = 1,
        page_size: int = 10,
    ) -> dict[str, Any]:
        params: dict[str, QueryValue] = {"pageNumber": page_number, "pageSize": page_size}
        if origins:
            params["origins"] = ",".join(origins)
        result: dict[str, Any] = await self._call_json("GET", "blacklist/contacts", params=params)
        return result

    async def unblacklist_number(self, phone_number: str) -> bool:
        reply = await self._call(
            "DELETE", "blacklist/contact", params={"phoneNumber": phone_number}
        )
        return reply.text.strip() == "true"

    # ----------------------------------------------------------------- received SMS

    async def new_received_sms(
        self, *, id_sims: Sequence[str] = (), limit: int = 100
    ) -> list[dict[str, Any]]:
        """Messages received since the previous call (at most ``limit``, max 100)."""
        path = "newsrsmsmessage" + (f"/{','.join(id_sims)}" if id_sims else "")
        result = await self._call_json("GET", path, params={"limit": limit})
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
        params = {**_window(date_from, date_to, timezone), "pageNumber": page_number}
        params["pageSize"] = page_size
        result: dict[str, Any] = await self._call_json("GET", path, params=params)
        return result

    async def received_sms_after(
        self, id_sim: str, id_message: int | str, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Messages received on ``id_sim`` after message ``id_message``."""
        path = f"srsmshistory/{id_sim}/{id_message}"
        result = await self._call_json("GET", path, params={"limit": limit})
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
        params = {"type": mo_type, **_window(date_from, date_to, timezone)}
        params.update(pageNumber=page_number, pageSize=page_size)
        result: dict[str, Any] = await self._call_json("GET", "mosmshistory", params=params)
        return result

    # ----------------------------------------------------------------- TPOA aliases

    async def create_alias(self, alias: str, **company: str) -> dict[str, Any]:
        """Register a sender alias. ``company`` uses Skebby's keys with '_' for '-', e.g.
        ``company_name``, ``contact_name``, ``contact_surname``, ``vat_number``."""
        body = {"alias": {"alias": alias, **{k.replace("_", "-"): v for k, v in company.items()}}}
        result: dict[str, Any] = await self._call_json("POST", "alias", json=body, ok=(200, 201))
        return result

    async def list_aliases(
        self, *, hide_not_approved: bool = False, page_number: int = 1, page_size: int = 10
    ) -> dict[str, Any]:
        params = {
            "hide-not-approved": hide_not_approved,
            "pageNumber": page_number,
            "pageSize": page_size,
        }
        result: dict[str, Any] = await self._call_json("GET", "alias", params=params)
        return result

    async def get_alias(self, alias_id: str) -> dict[str, Any]:
        result = await self._call_json("GET", f"alias/{alias_id}")
        alias: dict[str, Any] = result.get("alias", result)
        return alias

    async def delete_alias(self, alias_id: str) -> None:
        await self._call("DELETE", f"alias/{alias_id}")

    # ----------------------------------------------------------------- subaccounts

    async def list_subaccounts(
        self, *, page_number: int = 1, page_size: int = 10
    ) -> dict[str, Any]:
        params = {"pageNumber": page_number, "pageSize": page_size}
        result: dict[str, Any] = await self._call_json("GET", "subaccounts", params=params)
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
        result = await self._call_json("POST", "subaccount", json=body, ok=(200, 201))
        return str(result["idSubaccount"])

    async def get_subaccount(self, subaccount_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call_json("GET", f"subaccount/{subaccount_id}")
        return result

    async def update_subaccount(self, subaccount_id: str, **fields: Any) -> None:
        body = {k.replace("_", "-"): v for k, v in fields.items()}
        await self._call("PUT", f"subaccount/{subaccount_id}", json=body)

    async def change_subaccount_password(self, subaccount_id: str, password: str) -> None:
        path = f"subaccount/{subaccount_id}/changepwd"
        await self._call("POST", path, json={"passwd": password}, ok=(200, 201), sensitive=True)

    async def subaccount_credits(self, subaccount_id: str) -> dict[str, int]:
        """Available credits of a subaccount per message type."""
        result = await self._call_json("GET", f"subaccount/{subaccount_id}/credit")
        return {c["message-type"]: int(c["amount"]) for c in result.get("credits", [])}

    async def subaccount_purchases(
        self, subaccount_id: str, *, page_number: int = 1, page_size: int = 10
    ) -> dict[str, Any]:
        params = {"pageNumber": page_number, "pageSize": page_size}
        path = f"subaccount/{subaccount_id}/purchase"
        result: dict[str, Any] = await self._call_json("GET", path, params=params)
        return result

    async def create_subaccount_purchase(
        self, subaccount_id: str, quantities: Mapping[str, int]
    ) -> dict[str, Any]:
        """Move credits (message type -> quantity) from this superaccount to a subaccount."""
        body = {"purchases": [{"message-type": t, "quantity": q} for t, q in quantities.items()]}
        path = f"subaccount/{subaccount_id}/purchase"
        result: dict[str, Any] = await self._call_json("POST", path, json=body, ok=(200, 201))
        return result

    async def delete_subaccount_purchase(self, subaccount_id: str, purchase_id: str) -> None:
        await self._call("DELETE", f"subaccount/{subaccount_id}/purchase/{purchase_id}")

    # ----------------------------------------------------------------- two-factor authentication

    async def request_2fa_pin(
        self,
        recipient: str,
        *,
        sender_name: str | None = None,
        expiry_minutes: int | None = None,
        message_body: str | None = None,
    ) -> None:
        """Text a PIN to ``recipient`` (``%PIN%`` in ``message_body`` places it)."""
        body: dict[str, Any] = {"recipient": recipient}
        if sender_name is not None:
            body["senderName"] = sender_name
        if expiry_minutes is not None:
            body["expiry"] = expiry_minutes
        if message_body is not None:
            body["messageBody"] = message_body
        await self._call("POST", "2fa/request", json=body, ok=(200, 201))

    async def verify_2fa_pin(self, recipient: str, pin: str) -> TwoFactorResult:
        body = {"recipient": recipient, "pin": pin}
        result = await self._call_json("POST", "2fa/verify", json=body, ok=(200, 201))
        tries = result.get("triesRemaining")
        return TwoFactorResult(
            valid=result.get("status") == "OK",
            tries_remaining=int(tries) if tries is not None else None,
            error=result.get("error"),
        )

    # ----------------------------------------------------------------- landing pages

    async def list_landing_pages(self) -> list[dict[str, Any]]:
        result = await self._call_json("GET", "landings")
        landings: list[dict[str, Any]] = result.get("landings", [])
        return landings
