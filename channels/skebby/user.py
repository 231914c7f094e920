"""The account itself: remaining credits, dashboard, session check, password change."""

from __future__ import annotations

from pydantic import SecretStr

from channels.skebby.models import UserStatus
from channels.skebby.transport import SkebbyApi


class SkebbyUser(SkebbyApi):
    """The user API."""

    async def user_status(self, *, get_money: bool = True) -> UserStatus:
        """Remaining SMS per message type (plus money and email service when available)."""
        params = {"getMoney": get_money, "typeAliases": True}
        result = await self.transport.call_json("GET", "status", params=params)
        sms = {str(item["type"]): int(item["quantity"]) for item in result.get("sms", [])}
        money = result.get("money")
        return UserStatus(
            sms=sms, money=float(money) if money is not None else None, email=result.get("email")
        )

    async def dashboard(self) -> str:
        """The URL of the account's web dashboard."""
        reply = await self.transport.call("GET", "dashboard")
        return reply.text.strip()

    async def check_session(self) -> bool:
        """Whether the current key is still valid (Skebby does not renew it)."""
        reply = await self.transport.call("GET", "checksession")
        return reply.text.strip().lower() == "true"

    async def reset_password(self, new_password: SecretStr | str) -> bool:
        """Change the account password; later logins use the new one."""
        secret = new_password if isinstance(new_password, SecretStr) else SecretStr(new_password)
        params = {"password": secret.get_secret_value()}
        reply = await self.transport.call(
            "POST", "pwdreset", params=params, ok=(200, 201), sensitive=True
        )
        changed = reply.text.strip().lower() == "true"
        if changed:
            self.transport.set_password(secret)
        return changed
