"""The conversation handlers' side of the per-token Telegram budget.

python-telegram-bot calls ``process_request`` around every Bot API request of the handlers. Sends
draw on the budget the broadcast channel shares, ahead of any waiting broadcast. A reply to a
private chat is not held to one per second (the person just wrote to us); groups keep their
twenty per minute. A flood-control answer to a reply pauses the broadcasts as well.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from channels.telegram_rate_limit import TelegramRateLimiter

JSONDict = dict[str, Any]
_SENDING_PREFIXES = ("send", "copyMessage", "forwardMessage", "editMessage")


class SharedBudgetRateLimiter(BaseRateLimiter[None]):
    def __init__(self, limiter: TelegramRateLimiter) -> None:
        self._limiter = limiter

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | JSONDict | list[JSONDict]:
        if not endpoint.startswith(_SENDING_PREFIXES):
            return await callback(*args, **kwargs)
        chat = data.get("chat_id")
        group = isinstance(chat, int) and chat < 0
        async with self._limiter.sending(chat if group else None, priority=True):
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                self._limiter.pause(_seconds(exc))  # the budget is per token: broadcasts wait too
                raise


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that the int form is deprecated; either works
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = exc.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
