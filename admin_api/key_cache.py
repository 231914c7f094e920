"""Verified API keys, remembered for a few seconds so a busy client costs no database round trip
per request; a revoked key is forgotten at once.

The cache only trusts itself while it can hear revocations: on PostgreSQL the service LISTENs
(``persistence.notify``) and drops a key the moment its revocation commits; while that listener is
down, and on SQLite (one process, no cache needed), nothing is cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from persistence.api_keys import parse_key_notification
from persistence.models import User

_MAX_CACHED_KEYS = 10_000


@dataclass
class KeyCache:
    ttl: float = 0.0  # 0: no caching at all
    listening: bool = False  # revocations are heard (set by the service's listener)
    entries: dict[str, tuple[float, User]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.ttl > 0 and self.listening

    def get(self, digest: str) -> User | None:
        entry = self.entries.get(digest)
        if entry is None:
            return None
        expires, user = entry
        if expires < time.monotonic() or not self.active:
            self.entries.pop(digest, None)
            return None
        return user

    def put(self, digest: str, user: User) -> None:
        if not self.active:
            return
        if len(self.entries) >= _MAX_CACHED_KEYS:
            self.entries.clear()
        self.entries[digest] = (time.monotonic() + self.ttl, user)

    def set_listening(self, listening: bool) -> None:
        """The listener connected (True) or lost its connection (False): start afresh."""
        self.listening = listening
        self.entries.clear()

    def on_notification(self, payload: str) -> None:
        kind, value = parse_key_notification(payload)
        if kind == "key":
            self.entries.pop(value, None)
        elif kind == "user":
            stale = [d for d, (_, user) in self.entries.items() if str(user.id) == value]
            for digest in stale:
                del self.entries[digest]
        else:
            self.entries.clear()
