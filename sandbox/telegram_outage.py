"""Whole-service outages of the Telegram simulator: what the bot side sees while Telegram is away.

Modes (see :meth:`sandbox.telegram_simulator.TelegramSimulator.set_outage`):

- ``"down"``: every Bot API call answers ``502 Bad Gateway``, as Telegram's front ends do when
  the servers behind them are away;
- ``"hang"``: calls are accepted and never answered; when the outage ends they answer
  ``504 Gateway Timeout`` (they were never carried out, so nothing was sent);
- ``"refuse"``: the bot port stops listening (connection refused) and every open connection to it
  is cut; the same port listens again when the outage ends.

Webhook deliveries pause for the whole outage and resume, in order, when it ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal, get_args

from sandbox.telegram_errors import JSON, ApiError

OutageMode = Literal["down", "hang", "refuse"]
OUTAGE_MODES: tuple[str, ...] = get_args(OutageMode)


def check_mode(mode: str | None) -> OutageMode | None:
    if mode is None:
        return None
    if mode not in OUTAGE_MODES:
        raise ValueError(f"outage mode must be one of {', '.join(OUTAGE_MODES)} or None")
    return mode  # type: ignore[return-value]  # checked against the Literal's values


class OutageState:
    """The current outage: its mode, when it ends by itself, and the calls it holds."""

    def __init__(self) -> None:
        self.mode: OutageMode | None = None
        self.started: float | None = None
        self.ends: float | None = None
        self.answered = 0
        self.online = asyncio.Event()
        self.online.set()
        self._released = asyncio.Event()

    def begin(self, mode: OutageMode | None, seconds: float | None) -> None:
        self.release()
        self.mode = mode
        self.answered = 0
        now = time.monotonic()
        self.started = now if mode is not None else None
        self.ends = now + seconds if mode is not None and seconds is not None else None
        if mode is None:
            self.online.set()
        else:
            self.online.clear()
        if mode == "hang":
            self._released = asyncio.Event()

    def release(self) -> None:
        """Let calls held by a "hang" outage go (they answer 504)."""
        self._released.set()

    async def check(self) -> None:
        """Raise what a Bot API call gets now ("refuse" is handled at the connection)."""
        if self.mode == "down":
            self.answered += 1
            raise ApiError(502, "Bad Gateway")
        if self.mode == "hang":
            self.answered += 1
            await self._released.wait()
            raise ApiError(504, "Gateway Timeout")

    def describe(self) -> JSON | None:
        if self.mode is None or self.started is None:
            return None
        now = time.monotonic()
        return {
            "mode": self.mode,
            "for_seconds": round(now - self.started, 3),
            "seconds_left": round(max(self.ends - now, 0.0), 3) if self.ends else None,
            "calls_failed": self.answered,
        }
