"""The channel-wide circuit breaker: when it pauses a channel, and how it comes back."""

from __future__ import annotations

from channels.breaker import BreakerConfig, BreakerState, CircuitBreaker
from tests.factories import FakeClock

CONFIG = BreakerConfig(window_seconds=10, min_failures=5, failure_ratio=0.5, open_seconds=5)


def _breaker() -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker("telegram", clock, CONFIG), clock


def test_a_provider_failing_most_sends_pauses_the_channel() -> None:
    """Five provider failures out of eight sends within ten seconds: nothing more is handed out."""
    breaker, _ = _breaker()
    for failed in (False, True, False, True, True, False, True, True):
        breaker.record(failed, "connection refused")
    assert breaker.state is BreakerState.OPEN
    assert breaker.claim_limit(200) == 0
    assert breaker.last_failure == "connection refused"


def test_failures_among_many_successes_keep_the_channel_sending() -> None:
    """A few provider failures in a busy second of successes do not pause the channel."""
    breaker, _ = _breaker()
    for n in range(10_000):
        breaker.record(n % 100 == 0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.claim_limit(200) == 200


def test_old_successes_leave_the_window() -> None:
    """Successes older than the window do not outvote a provider failing right now."""
    breaker, clock = _breaker()
    for _ in range(1_000):
        breaker.record(False)
    clock.advance(11)
    for _ in range(5):
        breaker.record(True, "502")
    assert breaker.state is BreakerState.OPEN


def test_a_working_probe_closes_it_and_a_failing_one_waits_twice_as_long() -> None:
    """After the pause one probe goes out: failing, the next pause is 10 s; working, it closes."""
    breaker, clock = _breaker()
    for _ in range(5):
        breaker.record(True, "timeout")
    clock.advance(5)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.claim_limit(200) == 1
    breaker.start_probe()
    breaker.record(True, "timeout")
    assert breaker.state is BreakerState.OPEN
    assert breaker.wait_seconds() == 10
    clock.advance(10)
    breaker.start_probe()
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.openings == 1
