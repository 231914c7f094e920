"""How the getUpdates loop is doing, for the log and for /readyz.

python-telegram-bot retries a failing getUpdates forever, with a growing pause, and by default
logs a traceback each time. The commonest cause in practice is a second process polling the
same bot token: Telegram then answers 409 Conflict to one of them, over and over. Herald says so
once per episode, in one line naming the cause, reports it in /readyz until polling works again,
and says once when it does.
"""

from __future__ import annotations

import logging

from telegram.error import Conflict, TelegramError

from admin_api.context import NotReadyError

log = logging.getLogger(__name__)

CONFLICT = (
    "another process is polling this bot token (Telegram answered 409 Conflict to getUpdates): "
    "only one `herald run` may poll a bot; stop the other one, or use TELEGRAM_MODE=webhook"
)


class PollingHealth:
    def __init__(self) -> None:
        self.problem: str | None = None

    def error_callback(self, exc: TelegramError) -> None:
        """PTB's ``error_callback`` for getUpdates failures (a plain function, never raises)."""
        reason = CONFLICT if isinstance(exc, Conflict) else f"getUpdates failed: {exc}"
        if reason != self.problem:
            log.log(logging.ERROR if isinstance(exc, Conflict) else logging.WARNING, reason)
        self.problem = reason

    def observe(self, status: int) -> None:
        """Each getUpdates answer's HTTP status (a 200 ends an episode)."""
        if status == 200 and self.problem is not None:
            self.problem = None
            log.info("polling for updates works again")

    async def check(self) -> bool:
        """The /readyz check: not ready, with the reason, while getUpdates keeps failing."""
        if self.problem is not None:
            raise NotReadyError(self.problem)
        return True
