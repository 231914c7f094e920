"""What happens when polling Telegram for updates fails.

python-telegram-bot's updater already retries with a growing pause (up to 30 s). Left alone it
logs a traceback for every failed ``getUpdates``; Herald's callback logs one line per failure
episode instead (an episode ends after a quiet minute), counts every failure in /metrics, and
remembers a 409 Conflict — another process polling with the same token — so that /readyz can
say this process is not receiving updates, and why. The first getUpdates that Telegram answers
again ends the episode at once (``answered``, fed by the getUpdates HTTP client).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram.error import Conflict, TelegramError

from channels.backoff import FailureEpisode, LoopObserver

log = logging.getLogger(__name__)

QUIET_SECONDS = 60.0  # no failure for this long: the episode is over
CONFLICT = (
    "another process is polling Telegram with the same bot token (409 Conflict): this one "
    "receives no updates until it stops; run one poller per token (or use webhook mode)"
)


class PollingErrors:
    """The updater's ``error_callback``: a plain function, as PTB requires."""

    def __init__(
        self,
        observer: LoopObserver | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._episode = FailureEpisode(
            "Telegram polling", log, observer=observer, cadence="with a growing pause (up to 30 s)"
        )
        self._last_failure: float | None = None
        self._last_conflict: float | None = None

    def __call__(self, exc: TelegramError) -> None:
        now = self._monotonic()
        if self._last_failure is not None and now - self._last_failure > QUIET_SECONDS:
            self._episode.recovered()
        self._last_failure = now
        if isinstance(exc, Conflict):
            if not self._conflicting(now):
                log.error(CONFLICT)
            self._last_conflict = now
            return
        self._episode.failed(exc)

    def answered(self, status: int) -> None:
        """The HTTP status of each getUpdates answer: a 200 means polling works (again)."""
        if status != 200 or self._last_failure is None:
            return
        if self._last_conflict is not None:
            log.info("polling for updates works again: no other process is polling now")
        self._last_conflict = self._last_failure = None
        self._episode.recovered()

    def _conflicting(self, now: float) -> bool:
        return self._last_conflict is not None and now - self._last_conflict <= QUIET_SECONDS

    @property
    def receiving(self) -> bool:
        """False while another poller has taken the updates away (a recent 409)."""
        return not self._conflicting(self._monotonic())
