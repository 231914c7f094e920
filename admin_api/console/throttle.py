"""Failed logins, counted per username and per client address in a sliding window.

A username that fails ``attempts`` times in ``window`` seconds is refused until the oldest failure
leaves the window, whatever the address (password guessing against one account); an address
that fails ten times as often is refused whatever the username (one client trying many
accounts). Refused attempts do not check the password, so they cost no hashing either. The
counts live in memory: a restart forgets them, and each process counts its own.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MonotonicClock = Callable[[], float]
_MAX_TRACKED = 10_000
ADDRESS_FACTOR = 10


class LoginThrottle:
    def __init__(
        self, attempts: int, window: float, *, clock: MonotonicClock = time.monotonic
    ) -> None:
        self._limits = {"user": attempts, "address": attempts * ADDRESS_FACTOR}
        self._window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        now = self._clock()
        wait = 0.0
        for key in self._keys(username, address):
            failures = self._recent(key, now)
            if failures is not None and len(failures) >= self._limits[key[0]]:
                wait = max(wait, failures[0] + self._window - now)
        return wait

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        if len(self._failures) > _MAX_TRACKED:
            for key in list(self._failures):
                self._recent(key, now)
        for key in self._keys(username, address):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(("user", username.casefold()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", username.casefold()), ("address", address)
