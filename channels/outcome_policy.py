"""From a channel's answer to the row written back: final status, or another try and when.

- A provider's outage (connection refused, timeout, 5xx) and a provider's "slow down" (429) do
  not spend the delivery's attempts: the delivery waits, and its deadline ends the wait.
- Any other transient error spends an attempt; after ``max_attempts`` the delivery fails.
- Past its deadline (counted from when the message was first due) a delivery fails with the
  last reason, whatever kind of retry it was waiting for.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from channels.base import DeliveryResult, Outcome
from persistence.models import DeliveryStatus
from persistence.outbox import ClaimedDelivery, DeliveryUpdate

_FINAL_BY_OUTCOME = {
    Outcome.SUCCESS: DeliveryStatus.SUCCESS,
    Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
    Outcome.FAILED: DeliveryStatus.FAILED,
    Outcome.INVALID: DeliveryStatus.INVALID,
    Outcome.BLOCKED: DeliveryStatus.BLOCKED,
}
DEFAULT_DEADLINE = timedelta(hours=24)
# How soon a delivery held back by a provider's outage is looked at again (with jitter); the
# breaker decides when anything is actually sent.
OUTAGE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    deadlines: Mapping[str, timedelta] = field(default_factory=dict)  # per channel

    def deadline(self, channel: str) -> timedelta:
        return self.deadlines.get(channel, DEFAULT_DEADLINE)


class OutcomePolicy:
    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()

    def backoff(self, attempts: int) -> float:
        p = self.policy
        base = p.backoff_base_seconds * 2.0 ** max(0, attempts - 1)
        return min(p.backoff_max_seconds, base) * self._rng.uniform(0.5, 1.5)

    def update_for(
        self,
        delivery: ClaimedDelivery,
        result: DeliveryResult,
        *,
        channel: str,
        now: datetime,
        first_due: datetime,
        batch_key: str | None,
        cancelled: bool,
    ) -> DeliveryUpdate:
        spends_attempt = result.counts_as_attempt and not result.provider_failed
        attempts = delivery.attempts if spends_attempt else delivery.attempts - 1
        if cancelled and result.outcome in (Outcome.FAILED, Outcome.RETRY):
            # Never handed to the provider: the claim's attempt is given back.
            return DeliveryUpdate(
                delivery.id, DeliveryStatus.CANCELLED, delivery.attempts - 1, result.detail
            )
        if result.outcome is Outcome.RETRY:
            return self._retry(delivery, result, channel, now, first_due, attempts, batch_key)
        status = _FINAL_BY_OUTCOME[result.outcome]
        delivered = status in (DeliveryStatus.SUCCESS, DeliveryStatus.UNKNOWN)
        return DeliveryUpdate(
            delivery.id,
            status,
            attempts,
            detail=result.detail,
            last_error=None if delivered else result.detail,
            provider_id=result.provider_id,
            sent_number=result.sent_number,
            sent_at=now if delivered else None,
            address=result.new_address,
            next_attempt_at=now,
            batch_key=batch_key,
        )

    def _retry(
        self,
        delivery: ClaimedDelivery,
        result: DeliveryResult,
        channel: str,
        now: datetime,
        first_due: datetime,
        attempts: int,
        batch_key: str | None,
    ) -> DeliveryUpdate:
        deadline = self.policy.deadline(channel)
        if now - first_due >= deadline:
            return self._give_up(delivery, result, attempts, batch_key, f"after {_span(deadline)}")
        if attempts >= self.policy.max_attempts:
            return self._give_up(
                delivery, result, attempts, batch_key, f"after {attempts} attempts"
            )
        if result.retry_after is not None:  # the provider said when: obey, plus a little spread
            delay = result.retry_after + self._rng.uniform(0, 0.5)
        elif result.provider_failed:
            delay = OUTAGE_RETRY_SECONDS * self._rng.uniform(0.5, 1.5)
        else:
            delay = self.backoff(attempts)
        return DeliveryUpdate(
            delivery.id,
            DeliveryStatus.PENDING,
            attempts,
            detail=f"will retry: {result.detail}",
            last_error=result.detail,
            next_attempt_at=now + timedelta(seconds=delay),
            batch_key=batch_key,
        )

    @staticmethod
    def _give_up(
        delivery: ClaimedDelivery,
        result: DeliveryResult,
        attempts: int,
        batch_key: str | None,
        when: str,
    ) -> DeliveryUpdate:
        return DeliveryUpdate(
            delivery.id,
            DeliveryStatus.FAILED,
            attempts,
            detail=f"gave up {when}: {result.detail}",
            last_error=result.detail,
            batch_key=batch_key,
        )


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
