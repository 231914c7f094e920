"""Async client for the Skebby REST API v1.0 (``https://api.skebby.it/API/v1.0/REST/``).

:class:`SkebbyGateway` is every area of the API (package :mod:`channels.skebby`, one module per
area) behind one shared login: sending and order states, history, user status, contacts and
groups, the blacklist, received SMS, TPOA aliases, subaccounts, 2FA and landing pages. One login
is shared by every call; a stale key is renewed once; every call has a timeout; errors carry
``transient`` so the dispatcher knows whether to retry; credentials are never logged (see
:mod:`channels.skebby.transport`).

Sending carries our own ``order_id`` (see :func:`make_order_id`), so after a crash or a lost
answer :meth:`SkebbyGateway.probe_order` tells whether Skebby accepted a batch before resending.
Import the gateway, its errors and its types from here.
"""

from __future__ import annotations

from typing import Literal

import aiohttp
from pydantic import SecretStr

from channels.skebby.aliases import SkebbyAliases
from channels.skebby.blacklist import SkebbyBlacklist
from channels.skebby.contacts import SkebbyContacts
from channels.skebby.errors import (
    SkebbyAuthenticationError,
    SkebbyBadRequestError,
    SkebbyConnectionError,
    SkebbyException,
    SkebbyNotFoundError,
    SkebbyServerError,
    SkebbyTimeoutError,
)
from channels.skebby.history import SkebbyHistory
from channels.skebby.landing_pages import SkebbyLandingPages
from channels.skebby.models import (
    Encoding,
    MessageType,
    MoType,
    OrderState,
    OrderStatus,
    RecipientState,
    SendResult,
    SkebbyBoolean,
    TwoFactorResult,
    UserStatus,
)
from channels.skebby.received import SkebbyReceived
from channels.skebby.sending import SendOptions, SkebbySending, is_valid_order_id, make_order_id
from channels.skebby.subaccounts import SkebbySubaccounts
from channels.skebby.transport import SkebbyTransport
from channels.skebby.two_factor import SkebbyTwoFactor
from channels.skebby.user import SkebbyUser

__all__ = [
    "Encoding",
    "MessageType",
    "MoType",
    "OrderState",
    "OrderStatus",
    "RecipientState",
    "SendOptions",
    "SendResult",
    "SkebbyAuthenticationError",
    "SkebbyBadRequestError",
    "SkebbyBoolean",
    "SkebbyConnectionError",
    "SkebbyException",
    "SkebbyGateway",
    "SkebbyNotFoundError",
    "SkebbyServerError",
    "SkebbyTimeoutError",
    "TwoFactorResult",
    "UserStatus",
    "is_valid_order_id",
    "make_order_id",
]


class SkebbyGateway(
    SkebbySending,
    SkebbyHistory,
    SkebbyUser,
    SkebbyContacts,
    SkebbyBlacklist,
    SkebbyReceived,
    SkebbyAliases,
    SkebbySubaccounts,
    SkebbyTwoFactor,
    SkebbyLandingPages,
):
    """Async Skebby client. Use as ``async with SkebbyGateway(...) as gateway:``."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr | str,
        *,
        auth: Literal["session", "token"] | str = "session",
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(
            SkebbyTransport(
                base_url, username, password, auth=auth, timeout=timeout, session=session
            )
        )

    def __repr__(self) -> str:
        t = self.transport
        return f"SkebbyGateway({t.base_url!r}, {t.username!r}, auth={t.auth!r})"

    async def __aenter__(self) -> SkebbyGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    async def login(self) -> None:
        """Log in now (``GET login`` or ``GET token``), replacing any current session."""
        await self.transport.login()

    @property
    def logins(self) -> int:
        """Successful logins so far (one, unless Skebby expired the session)."""
        return self.transport.logins
