"""Two-factor authentication: text a PIN, verify it."""

from __future__ import annotations

from typing import Any

from channels.skebby.models import TwoFactorResult
from channels.skebby.transport import SkebbyApi


class SkebbyTwoFactor(SkebbyApi):
    """The 2FA API."""

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
        await self.transport.call("POST", "2fa/request", json=body, ok=(200, 201))

    async def verify_2fa_pin(self, recipient: str, pin: str) -> TwoFactorResult:
        body = {"recipient": recipient, "pin": pin}
        result = await self.transport.call_json("POST", "2fa/verify", json=body, ok=(200, 201))
        tries = result.get("triesRemaining")
        return TwoFactorResult(
            valid=result.get("status") == "OK",
            tries_remaining=int(tries) if tries is not None else None,
            error=result.get("error"),
        )
