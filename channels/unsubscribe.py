"""Unsubscribe links: a signed token per recipient and channel, so a person can refuse a channel
from the message itself (RFC 8058 one-click, or a confirmation page) without logging in.

The token is the recipient and channel in the clear (base64url) and an HMAC-SHA256 of them under
a server secret: it names exactly one person and one channel, cannot be forged or moved to
another person, and is checked in constant time. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

_FOOTERS = {
    "en": ("Unsubscribe from these emails: {url}", "Unsubscribe from these emails"),
    "it": ("Per non ricevere più queste email: {url}", "Non ricevere più queste email"),
}


@dataclass(frozen=True)
class UnsubscribeRef:
    """Whom a token names: a recipient of one kind and the channel they may refuse."""

    kind: str
    id: int
    channel: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeLinks:
    """Makes and reads the tokens, and the links to ``{base_url}/unsubscribe/{token}``."""

    def __init__(self, secret: bytes, base_url: str, *, language: str = "en") -> None:
        if len(secret) < 16:
            raise ValueError("the unsubscribe secret must be at least 16 bytes")
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self.footer_text, self.footer_link = _FOOTERS.get(language, _FOOTERS["en"])

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, b"herald-unsubscribe:" + payload, hashlib.sha256).digest()

    def token(self, kind: str, rid: int, channel: str) -> str:
        payload = f"{kind}:{rid}:{channel}".encode()
        return f"{_b64(payload)}.{_b64(self._signature(payload))}"

    def url(self, kind: str, rid: int, channel: str) -> str:
        return f"{self.base_url}/unsubscribe/{self.token(kind, rid, channel)}"

    def read(self, token: str) -> UnsubscribeRef | None:
        """The recipient a genuine token names; None for anything forged, altered or garbled."""
        encoded, dot, signature = token.partition(".")
        if not dot or len(token) > 400:
            return None
        try:
            payload = _unb64(encoded)
            presented = _unb64(signature)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(presented, self._signature(payload)):
            return None
        try:
            kind, rid, channel = payload.decode().split(":")
            return UnsubscribeRef(kind, int(rid), channel)
        except ValueError:
            return None
