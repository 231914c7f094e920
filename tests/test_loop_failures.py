"""Background loops through failures: scheduled jobs and Telegram polling log once per episode."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from telegram.error import Conflict, NetworkError, TimedOut

from bot.context import HeraldContext
from bot.jobs import GuardedJob, start_scheduled_messages
from bot.polling import PollingErrors
from bot.settings import load_settings
from channels.backoff import Backoff
from tests.conftest import Database
from tests.tcp_proxy import tcp_proxy


class Counting:
    """The loop observer the service's metrics implement, counting here."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}

    def loop_failure(self, loop: str) -> None:
        self.failures[loop] = self.failures.get(loop, 0) + 1


class _NoDispatcher:
    """start_scheduled_messages wakes the dispatcher when something became due."""

    def wake(self) -> None:
        return None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_job_failing_while_the_database_is_away_logs_one_line_and_its_recovery(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three runs of a job with PostgreSQL unreachable: one error line naming the cause, no
    traceback, three failures counted, and one line when it works again."""
    url = make_url(db.url)
    async with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        settings = load_settings(_env_file=None, database_url=proxied, data_dir=tmp_path)
        context = HeraldContext.from_settings(settings)
        observer = Counting()
        job = GuardedJob("scheduled-messages", start_scheduled_messages, 5, observer)
        try:
            await proxy.cut()
            with caplog.at_level(logging.INFO, logger="bot.jobs"):
                for _ in range(3):
                    await job.run(context, _NoDispatcher())
                await proxy.restore()
                await context.engine.dispose()
                await job.run(context, _NoDispatcher())
        finally:
            await context.close()
    lines = [r for r in caplog.records if r.name == "bot.jobs"]
    assert [r.levelname for r in lines] == ["ERROR", "WARNING"]
    assert "database unreachable" in lines[0].getMessage() and lines[0].exc_info is None
    assert "works again after 3 failed attempt(s)" in lines[1].getMessage()
    assert observer.failures == {"job scheduled-messages": 3}


def test_polling_failures_are_one_line_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    """Network errors while polling: one line for the episode; after a quiet minute a new
    failure starts (and logs) a new episode."""
    now = [0.0]
    errors = PollingErrors(monotonic=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.polling"):
        for _ in range(5):
            errors(NetworkError("connection refused"))
            now[0] += 2
        now[0] += 120
        errors(TimedOut("no answer"))
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.polling"]
    assert len(messages) == 3, messages  # failure, recovery, failure
    assert "Telegram polling failed" in messages[0] and "connection refused" in messages[0]


def test_a_conflicting_poller_makes_the_bot_unready_until_it_goes_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 409 Conflict (another process polls with the token) is said once, and the process
    counts as not receiving updates until a minute passes without it."""
    now = [0.0]
    errors = PollingErrors(monotonic=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.polling"):
        for _ in range(4):
            errors(Conflict("terminated by other getUpdates request"))
            now[0] += 3
    assert not errors.receiving
    conflict_lines = [r for r in caplog.records if "409 Conflict" in r.getMessage()]
    assert len(conflict_lines) == 1
    now[0] += 61
    assert errors.receiving


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    """Waits grow 1, 2, 4 ... up to the cap, each within ±50 %, and start over after a reset."""
    backoff = Backoff(1.0, 8.0)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, nominal in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.5 * nominal <= delay <= 1.5 * nominal
    backoff.reset()
    assert backoff.next_delay() <= 1.5
