"""Fault injection and optional rate-limit enforcement for the Telegram Bot API simulator."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from sandbox.telegram_models import ApiError, too_many_requests

SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(slots=True)
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None

    def error(self) -> ApiError:
        parameters = {"retry_after": self.retry_after} if self.retry_after is not None else None
        return ApiError(self.error_code, self.description, parameters)


class FaultInjector:
    """Scripted (``fail_next``/``hang_next``/``hold_next``) and random (``set_fault_rates``)
    failures."""

    def __init__(self) -> None:
        self._failures: dict[str, list[_Failure]] = {}
        self._hangs: dict[str, int] = {}
        self._holds: dict[str, int] = {}
        self._latency: dict[str | None, tuple[float, float]] = {}
        self.rate_429 = 0.0
        self.rate_5xx = 0.0
        self.retry_after = 1
        self._rng = random.Random()
        self._jitter_rng = random.Random()

    def reset(self) -> None:
        self._failures.clear()
        self._hangs.clear()
        self._holds.clear()
        self._latency.clear()
        self.set_fault_rates()

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        count: int = 1,
        chat_id: int | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after or 1}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, "Error")
        failure = _Failure(error_code, description, retry_after, count, chat_id)
        self._failures.setdefault(method.lower(), []).append(failure)

    def hang_next(self, method: str, count: int = 1) -> None:
        _add(self._hangs, method, count)

    def hold_next(self, method: str, count: int = 1) -> None:
        _add(self._holds, method, count)

    def set_latency(self, seconds: float, method: str | None = None, jitter: float = 0.0) -> None:
        if seconds < 0 or jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        key = method.lower() if method else None
        if seconds == 0 and jitter == 0:
            self._latency.pop(key, None)
        else:
            self._latency[key] = (seconds, jitter)

    def set_fault_rates(
        self,
        rate_429: float = 0,
        rate_5xx: float = 0,
        retry_after: int = 1,
        seed: int | None = None,
    ) -> None:
        if not (0 <= rate_429 <= 1 and 0 <= rate_5xx <= 1 and rate_429 + rate_5xx <= 1):
            raise ValueError("fault rates must be between 0 and 1 and sum to at most 1")
        if retry_after < 1:
            raise ValueError("retry_after must be at least 1")
        self.rate_429, self.rate_5xx, self.retry_after = rate_429, rate_5xx, retry_after
        self._rng = random.Random(seed)

    def latency_for(self, method: str) -> float:
        seconds, jitter = self._latency.get(method.lower(), self._latency.get(None, (0.0, 0.0)))
        return seconds + self._jitter_rng.uniform(0, jitter) if jitter else seconds

    def take_hang(self, method: str) -> bool:
        return _take(self._hangs, method)

    def take_hold(self, method: str) -> bool:
        return _take(self._holds, method)

    def take_failure(self, method: str, chat_id: int | None) -> ApiError | None:
        """Consume the first scripted failure of ``method`` that applies to ``chat_id``."""
        failures = self._failures.get(method.lower())
        if not failures:
            return None
        for index, failure in enumerate(failures):
            if failure.chat_id is None or failure.chat_id == chat_id:
                failure.remaining -= 1
                if failure.remaining == 0:
                    del failures[index]
                return failure.error()
        return None

    def random_failure(self, method: str) -> ApiError | None:
        if method not in SEND_METHODS or not (self.rate_429 or self.rate_5xx):
            return None
        roll = self._rng.random()
        if roll < self.rate_429:
            return too_many_requests(self.retry_after)
        if roll < self.rate_429 + self.rate_5xx:
            return ApiError(502, "Bad Gateway")
        return None

    def describe(self) -> dict[str, object]:
        return {
            "fail_next": {
                method: [f.remaining for f in failures]
                for method, failures in self._failures.items()
                if failures
            },
            "hang_next": dict(self._hangs),
            "latency": {key or "*": value for key, value in self._latency.items()},
            "rate_429": self.rate_429,
            "rate_5xx": self.rate_5xx,
            "retry_after": self.retry_after,
        }


class RateLimits:
    """Telegram's flood limits as sliding windows: overall per second, per chat, per group."""

    PAID_PER_SECOND = 1000

    def __init__(
        self,
        global_per_second: int | None = 30,
        per_chat_per_second: int | None = 1,
        per_group_per_minute: int | None = 20,
    ) -> None:
        self.global_per_second = global_per_second
        self.per_chat_per_second = per_chat_per_second
        self.per_group_per_minute = per_group_per_minute
        self._global: deque[float] = deque()
        self._paid: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}
        self._groups: dict[int, deque[float]] = {}

    @staticmethod
    def _wait(window: deque[float], limit: int | None, span: float, now: float) -> float:
        if limit is None:
            return 0.0
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) < limit:
            return 0.0
        return window[0] + span - now

    def check(self, chat_id: int, *, is_group: bool, paid: bool, now: float) -> None:
        """Raise the 429 Telegram would answer if this send exceeded a limit."""
        if paid:
            wait = self._wait(self._paid, self.PAID_PER_SECOND, 1.0, now)
        else:
            wait = self._wait(self._global, self.global_per_second, 1.0, now)
        chat_window = self._chats.setdefault(chat_id, deque())
        wait = max(wait, self._wait(chat_window, self.per_chat_per_second, 1.0, now))
        if is_group:
            group_window = self._groups.setdefault(chat_id, deque())
            wait = max(wait, self._wait(group_window, self.per_group_per_minute, 60.0, now))
        if wait > 0:
            raise too_many_requests(max(1, math.ceil(wait)))

    def record(self, chat_id: int, *, is_group: bool, paid: bool, now: float) -> None:
        (self._paid if paid else self._global).append(now)
        self._chats.setdefault(chat_id, deque()).append(now)
        if is_group:
            self._groups.setdefault(chat_id, deque()).append(now)


def _add(counts: dict[str, int], method: str, count: int) -> None:
    if count < 1:
        raise ValueError("count must be at least 1")
    key = method.lower()
    counts[key] = counts.get(key, 0) + count


def _take(counts: dict[str, int], method: str) -> bool:
    """Use up one of ``method``'s scripted calls; False when none is left."""
    key = method.lower()
    remaining = counts.get(key, 0)
    if remaining <= 0:
        return False
    if remaining == 1:
        del counts[key]
    else:
        counts[key] = remaining - 1
    return True
