"""The one clock type: every part that needs the time takes a ``Clock`` (tests pass a fake)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
