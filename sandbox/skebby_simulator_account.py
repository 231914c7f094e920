"""Account-side routes of the Skebby simulator: contacts, groups, TPOA aliases, subaccounts,
two-factor authentication and landing pages.

Mixed into :class:`sandbox.skebby_simulator.SkebbySimulator`; the SMS routes, authentication,
faults and lifecycle live there, received SMS and the blacklist in
:mod:`sandbox.skebby_simulator_inbound`. Shapes follow the public Skebby REST v1.0 documentation.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    parse_bool,
    parse_int,
    read_json,
)

# --------------------------------------------------------------------------- state


@dataclass
class TwoFactorPin:
    pin: str
    expires: datetime
    tries_left: int = 3


@dataclass
class AccountState:
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    subaccounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    purchases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pins: dict[str, TwoFactorPin] = field(default_factory=dict)
    sent_pins: list[tuple[str, str]] = field(default_factory=list)
    landings: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1

    def new_id(self) -> str:
        value = self.next_id
        self.next_id += 1
        return str(value)


_CONTACT_FIELDS = (
    "email", "phoneNumber", "name", "surname", "gender", "fax", "address", "city", "province",
    "birthdate", "promotiondate", "rememberdate", "zip", "groupIds",
    *(f"custom{i}" for i in range(1, 11)),
)  # fmt: skip
_ALIAS_REQUIRED = ("alias", "company-name", "contact-name", "contact-surname", "vat-number")


class SkebbyAccountRoutes(SkebbyClock):
    """Route handlers for the account's address book, aliases, subaccounts, 2FA and landings."""

    account: AccountState
    credits: dict[str, int]
    """SMS credits per message type (the simulator's), moved to and from subaccounts."""

    # ----------------------------------------------------------------- simulator-side API

    def last_2fa_pin(self, recipient: str) -> str | None:
        """The PIN most recently texted to ``recipient`` by ``POST 2fa/request``."""
        number = normalize_phone(recipient) or recipient
        pin = self.account.pins.get(number)
        return pin.pin if pin else None

    def add_landing(self, name: str, *, description: str = "") -> dict[str, Any]:
        landing = {
            "id_landing": int(self.account.new_id()),
            "name": name,
            "description": description,
            "long_description": description,
            "created": fmt_compact(self.now()),
            "modified": fmt_compact(self.now()),
            "url": f"https://sandbox.invalid/landing/{len(self.account.landings) + 1}",
        }
        self.account.landings.append(landing)
        return landing

    # ----------------------------------------------------------------- routes

    def account_routes(self) -> list[web.RouteDef]:
        p = API_PREFIX
        return [
            web.post(p + "contact", self._add_contact),
            web.post(p + "contacts", self._add_contacts),
            web.get(p + "contacts", self._list_contacts),
            web.get(p + "contact/{id}", self._get_contact),
            web.delete(p + "contact/{id}", self._delete_contact),
            web.post(p + "contact/{id}/group/{group_id}", self._contact_to_group),
            web.delete(p + "contact/{id}/group/{group_id}", self._contact_from_group),
            web.post(p + "group", self._create_group),
            web.get(p + "groups", self._list_groups),
            web.put(p + "group/{id}", self._update_group),
            web.delete(p + "group/{id}", self._delete_group),
            web.post(p + "alias", self._create_alias),
            web.get(p + "alias", self._list_aliases),
            web.get(p + "alias/{id}", self._get_alias),
            web.delete(p + "alias/{id}", self._delete_alias),
            web.get(p + "subaccounts", self._list_subaccounts),
            web.post(p + "subaccount", self._create_subaccount),
            web.get(p + "subaccount/{id}", self._get_subaccount),
            web.put(p + "subaccount/{id}", self._update_subaccount),
            web.post(p + "subaccount/{id}/changepwd", self._subaccount_password),
            web.get(p + "subaccount/{id}/credit", self._subaccount_credit),
            web.get(p + "subaccount/{id}/purchase", self._subaccount_purchases),
            web.post(p + "subaccount/{id}/purchase", self._subaccount_purchase),
            web.delete(p + "subaccount/{id}/purchase/{pid}", self._subaccount_purchase_delete),
            web.post(p + "2fa/request", self._2fa_request),
            web.post(p + "2fa/verify", self._2fa_verify),
            web.get(p + "landings", self._landings),
        ]

    # ----------------------------------------------------------------- contacts & groups

    def _contact_from_json(self, data: Mapping[str, Any]) -> dict[str, Any]:
        phone = normalize_phone(data.get("phoneNumber"))
        if data.get("phoneNumber") is not None and phone is None:
            bad_request("phoneNumber is not a valid international number")
        if phone is None and not data.get("email"):
            bad_request("a contact needs an email or a phoneNumber")
        contact = {key: data[key] for key in _CONTACT_FIELDS if key in data}
        contact["phoneNumber"] = phone or ""
        group_ids = [str(g) for g in data.get("groupIds") or []]
        for group_id in group_ids:
            self._group(group_id)
        contact["groupIds"] = group_ids
        return contact

    def _contact(self, contact_id: str) -> dict[str, Any]:
        contact = self.account.contacts.get(contact_id)
        if contact is None:
            not_found(f"contact {contact_id} not found")
        return contact

    def _group(self, group_id: str) -> dict[str, Any]:
        group = self.account.groups.get(group_id)
        if group is None:
            not_found(f"group {group_id} not found")
        return group

    async def _add_contact(self, request: web.Request) -> web.StreamResponse:
        contact = self._contact_from_json(await read_json(request))
        contact_id = self.account.new_id()
        contact["id"] = contact_id
        self.account.contacts[contact_id] = contact
        location = f"{API_PREFIX}contact/{contact_id}"
        return web.Response(status=201, headers={"Location": location})

    async def _add_contacts(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        items = data.get("contacts")
        if not isinstance(items, list) or not items:
            bad_request("contacts must be a non-empty list")
        update = parse_bool(data.get("updateExistingContact"), False, "updateExistingContact")
        by_phone = {c["phoneNumber"]: c for c in self.account.contacts.values() if c["phoneNumber"]}
        added = 0
        for item in items:
            if not isinstance(item, dict):
                bad_request("every contact must be an object")
            contact = self._contact_from_json(item)
            existing = by_phone.get(contact["phoneNumber"])
            if existing is not None:
                if update:
                    existing.update(contact)
                continue
            contact["id"] = self.account.new_id()
            self.account.contacts[contact["id"]] = contact
            by_phone[contact["phoneNumber"]] = contact
            added += 1
        return web.Response(text=str(added))

    async def _list_contacts(self, request: web.Request) -> web.StreamResponse:
        items, number, size = page(request, list(self.account.contacts.values()))
        total = len(self.account.contacts)
        return ok_json({"contacts": items, "pageNumber": number, "pageSize": size, "total": total})

    async def _get_contact(self, request: web.Request) -> web.StreamResponse:
        return ok_json(self._contact(request.match_info["id"]))

    async def _delete_contact(self, request: web.Request) -> web.StreamResponse:
        self._contact(request.match_info["id"])
        del self.account.contacts[request.match_info["id"]]
        return web.Response(text="")

    async def _contact_to_group(self, request: web.Request) -> web.StreamResponse:
        contact = self._contact(request.match_info["id"])
        group_id = request.match_info["group_id"]
        self._group(group_id)
        if group_id not in contact["groupIds"]:
            contact["groupIds"].append(group_id)
        return web.Response(text="")

    async def _contact_from_group(self, request: web.Request) -> web.StreamResponse:
        contact = self._contact(request.match_info["id"])
        group_id = request.match_info["group_id"]
        self._group(group_id)
        if group_id not in contact["groupIds"]:
            not_found(f"contact is not in group {group_id}")
        contact["groupIds"].remove(group_id)
        return web.Response(text="")

    async def _create_group(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            bad_request("name is required")
        group_id = self.account.new_id()
        self.account.groups[group_id] = {
            "id_group": group_id,
            "name": name,
            "description": str(data.get("description") or ""),
            "group_type": 0,
        }
        return web.Response(status=201, headers={"Location": f"{API_PREFIX}group/{group_id}"})

    async def _list_groups(self, request: web.Request) -> web.StreamResponse:
        groups = [
            {
                **g,
                "total": sum(
                    g["id_group"] in c["groupIds"] for c in self.account.contacts.values()
                ),
            }
            for g in self.account.groups.values()
        ]
        items, number, size = page(request, groups)
        return ok_json(
            {"groups": items, "pageNumber": number, "pageSize": size, "total": len(groups)}
        )

    async def _update_group(self, request: web.Request) -> web.StreamResponse:
        group = self._group(request.match_info["id"])
        data = await read_json(request)
        if "name" in data:
            if not isinstance(data["name"], str) or not data["name"].strip():
                bad_request("name must be a non-empty string")
            group["name"] = data["name"]
        if "description" in data:
            group["description"] = str(data["description"] or "")
        return web.Response(headers={"Location": f"{API_PREFIX}group/{group['id_group']}"})

    async def _delete_group(self, request: web.Request) -> web.StreamResponse:
        group_id = request.match_info["id"]
        self._group(group_id)
        del self.account.groups[group_id]
        for contact in self.account.contacts.values():
            if group_id in contact["groupIds"]:
                contact["groupIds"].remove(group_id)
        return web.Response(text="")

    # ----------------------------------------------------------------- TPOA aliases

    def _alias(self, alias_id: str) -> dict[str, Any]:
        alias = self.account.aliases.get(alias_id)
        if alias is None:
            not_found(f"alias {alias_id} not found")
        return alias

    async def _create_alias(self, request: web.Request) -> web.StreamResponse:
        data = (await read_json(request)).get("alias")
        if not isinstance(data, dict):
            bad_request("the body must contain an 'alias' object")
        missing = [key for key in _ALIAS_REQUIRED if not data.get(key)]
        if missing:
            bad_request(f"missing alias fields: {', '.join(missing)}")
        text = str(data["alias"])
        if not re.fullmatch(r"[A-Za-z0-9 .\-]{1,11}|\+?\d{3,16}", text):
            bad_request("alias must be up to 11 alphanumeric characters or a phone number")
        if any(a["alias"] == text for a in self.account.aliases.values()):
            bad_request(f"alias {text} already exists")
        alias_id = self.account.new_id()
        self.account.aliases[alias_id] = {**data, "id-alias": alias_id, "status": 0}
        return ok_json({"result": "OK", "id": alias_id, "status": 0})

    async def _list_aliases(self, request: web.Request) -> web.StreamResponse:
        aliases = list(self.account.aliases.values())
        if parse_bool(request.query.get("hide-not-approved"), False, "hide-not-approved"):
            aliases = [a for a in aliases if a["status"] == 1]
        items, number, size = page(request, aliases)
        return ok_json(
            {"alias": items, "pageNumber": number, "pageSize": size, "total": len(aliases)}
        )

    async def _get_alias(self, request: web.Request) -> web.StreamResponse:
        return ok_json({"alias": self._alias(request.match_info["id"])})

    async def _delete_alias(self, request: web.Request) -> web.StreamResponse:
        self._alias(request.match_info["id"])
        del self.account.aliases[request.match_info["id"]]
        return ok_json({"result": "OK"})

    def approve_alias(self, alias: str) -> None:
        """Simulator-side: mark a TPOA alias approved (status 1), as Skebby and AGCOM would."""
        for entry in self.account.aliases.values():
            if entry["alias"] == alias:
                entry["status"] = 1

    # ----------------------------------------------------------------- subaccounts

    def _subaccount(self, sub_id: str) -> dict[str, Any]:
        sub = self.account.subaccounts.get(sub_id)
        if sub is None:
            not_found(f"subaccount {sub_id} not found")
        return sub

    @staticmethod
    def _public_sub(sub: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if k != "password"}

    async def _list_subaccounts(self, request: web.Request) -> web.StreamResponse:
        subs = [self._public_sub(s) for s in self.account.subaccounts.values()]
        items, number, size = page(request, subs)
        return ok_json(
            {"subaccounts": items, "pageNumber": number, "pageSize": size, "total": len(subs)}
        )

    async def _create_subaccount(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        for key in ("login", "password", "email"):
            if not isinstance(data.get(key), str) or not data[key]:
                bad_request(f"{key} is required")
        if not 8 <= len(data["password"]) <= 16:
            bad_request("password must be 8 to 16 characters")
        if any(s["login"] == data["login"] for s in self.account.subaccounts.values()):
            bad_request(f"login {data['login']} already exists")
        sub_id = self.account.new_id()
        self.account.subaccounts[sub_id] = {
            **data,
            "id-subaccount": sub_id,
            "credit-eater": parse_bool(data.get("credit-eater"), True, "credit-eater"),
            "active": True,
            "credits": {},
        }
        self.account.purchases[sub_id] = []
        return ok_json({"idSubaccount": sub_id}, status=201)

    async def _get_subaccount(self, request: web.Request) -> web.StreamResponse:
        return ok_json(self._public_sub(self._subaccount(request.match_info["id"])))

    async def _update_subaccount(self, request: web.Request) -> web.StreamResponse:
        sub = self._subaccount(request.match_info["id"])
        data = await read_json(request)
        for key in ("id-subaccount", "login", "password", "credits"):
            data.pop(key, None)
        sub.update(data)
        return ok_json({"result": "OK"})

    async def _subaccount_password(self, request: web.Request) -> web.StreamResponse:
        sub = self._subaccount(request.match_info["id"])
        password = (await read_json(request)).get("passwd")
        if not isinstance(password, str) or not 8 <= len(password) <= 16:
            bad_request("passwd must be 8 to 16 characters")
        sub["password"] = password
        return ok_json({"result": "OK"})

    async def _subaccount_credit(self, request: web.Request) -> web.StreamResponse:
        sub = self._subaccount(request.match_info["id"])
        credits = [{"message-type": t, "amount": n} for t, n in sorted(sub["credits"].items())]
        return ok_json({"credits": credits})

    async def _subaccount_purchases(self, request: web.Request) -> web.StreamResponse:
        self._subaccount(request.match_info["id"])
        purchases = self.account.purchases[request.match_info["id"]]
        items, number, size = page(request, purchases)
        return ok_json(
            {"purchases": items, "pageNumber": number, "pageSize": size, "total": len(purchases)}
        )

    async def _subaccount_purchase(self, request: web.Request) -> web.StreamResponse:
        """Move SMS credits from the superaccount to a subaccount."""
        sub = self._subaccount(request.match_info["id"])
        data = await read_json(request)
        lines = data.get("purchases")
        if not isinstance(lines, list) or not lines:
            bad_request("purchases must be a non-empty list")
        wanted: dict[str, int] = {}
        own = self.credits
        for line in lines:
            kind = line.get("message-type") if isinstance(line, dict) else None
            if kind not in own:
                bad_request(f"unknown message-type {kind!r}")
            quantity = parse_int(line.get("quantity"), 0, "quantity", 1)
            wanted[kind] = wanted.get(kind, 0) + quantity
        for kind, quantity in wanted.items():
            if own[kind] < quantity:
                bad_request(f"not enough {kind} credits to move {quantity}")
        for kind, quantity in wanted.items():
            own[kind] -= quantity
            sub["credits"][kind] = sub["credits"].get(kind, 0) + quantity
        purchase_id = self.account.new_id()
        purchase = {
            "id-purchase": purchase_id,
            "purchase-date": fmt_compact(self.now()),
            "purchases": [{"message-type": k, "quantity": q} for k, q in wanted.items()],
        }
        self.account.purchases[sub["id-subaccount"]].append(purchase)
        return ok_json(purchase, status=201)

    async def _subaccount_purchase_delete(self, request: web.Request) -> web.StreamResponse:
        sub = self._subaccount(request.match_info["id"])
        purchases = self.account.purchases[sub["id-subaccount"]]
        match = [p for p in purchases if p["id-purchase"] == request.match_info["pid"]]
        if not match:
            not_found("purchase not found")
        purchase = match[0]
        own = self.credits
        for line in purchase["purchases"]:
            kind, quantity = line["message-type"], line["quantity"]
            if sub["credits"].get(kind, 0) < quantity:
                bad_request("the subaccount already spent these credits")
        for line in purchase["purchases"]:
            sub["credits"][line["message-type"]] -= line["quantity"]
            own[line["message-type"]] += line["quantity"]
        purchases.remove(purchase)
        return ok_json({"result": "OK"})

    # ----------------------------------------------------------------- two-factor authentication

    async def _2fa_request(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        recipient = normalize_phone(data.get("recipient"))
        if recipient is None:
            bad_request("invalid recipient")
        expiry = parse_int(data.get("expiry"), 60, "expiry", 1)
        pin = f"{secrets.randbelow(10**6):06d}"
        body = str(data.get("messageBody") or "Your verification code is %PIN%")
        text = body.replace("%PIN%", pin) if "%PIN%" in body else f"{body} {pin}"
        self.account.pins[recipient] = TwoFactorPin(pin, self.now() + timedelta(minutes=expiry))
        self.account.sent_pins.append((recipient, text))
        return ok_json({"status": "OK"})

    async def _2fa_verify(self, request: web.Request) -> web.StreamResponse:
        data = await read_json(request)
        recipient = normalize_phone(data.get("recipient"))
        if recipient is None:
            bad_request("invalid recipient")
        entry = self.account.pins.get(recipient)
        if entry is None or entry.expires < self.now() or entry.tries_left <= 0:
            self.account.pins.pop(recipient, None)
            return ok_json({"status": "ERROR", "error": "No valid pin for this recipient"})
        if str(data.get("pin")) != entry.pin:
            entry.tries_left -= 1
            return ok_json(
                {"status": "ERROR", "error": "Wrong pin", "triesRemaining": entry.tries_left}
            )
        del self.account.pins[recipient]
        return ok_json({"status": "OK"})

    # ----------------------------------------------------------------- landing pages

    async def _landings(self, request: web.Request) -> web.StreamResponse:
        return ok_json({"landings": self.account.landings})
