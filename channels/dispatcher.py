"""The dispatcher: the outbox worker that delivers queued messages over the channels.

One worker per channel claims due deliveries in batches under a lease, hands them to the channel
(grouped per message for batching channels, concurrently for per-recipient ones), and records every
outcome in bulk: success, retry with exponential backoff and jitter, or a final failure. Delivery
is at-least-once: a crash leaves rows ``sending`` until their lease expires and the rescue puts
them back; duplicates are bounded by what was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from channels.base import (
    Channel,
    Delivery,
    DeliveryObserver,
    DeliveryResult,
    Outcome,
    OutgoingMessage,
    StoredAttachment,
)
from channels.clock import Clock
from persistence import outbox
from persistence.database import SessionFactory
from persistence.models import DeliveryStatus
from persistence.outbox import ClaimedDelivery, DeliveryUpdate
from persistence.outgoing import load_outgoing
from persistence.recipient_kinds import RecipientKindRegistry
from persistence.registration import flag_blocked_chats, move_chat

log = logging.getLogger(__name__)

# Messages whose content stays in memory between batches (a broadcast is many batches).
MESSAGE_CACHE_SIZE = 2000

_FINAL_BY_OUTCOME = {
    Outcome.SUCCESS: DeliveryStatus.SUCCESS,
    Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
    Outcome.FAILED: DeliveryStatus.FAILED,
    Outcome.INVALID: DeliveryStatus.INVALID,
    Outcome.BLOCKED: DeliveryStatus.BLOCKED,
}


@dataclass(frozen=True)
class DispatcherConfig:
    batch_size: int = 200
    max_attempts: int = 5
    lease_seconds: float = 60.0
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    concurrency: int = 64
    idle_poll_seconds: float = 1.0
    max_inflight_batches: int = 2

    @property
    def in_flight_limit(self) -> int:
        """The most deliveries one worker can have handed out at once (bounds crash duplicates)."""
        return self.batch_size * self.max_inflight_batches


def make_batch_key(message_id: int, first_delivery_id: int, attempt: int) -> str:
    """A provider order id for a batch: ≤ 32 chars of [A-Za-z0-9_.-], the same on a probe."""
    return f"h{message_id}-{first_delivery_id}-{attempt}"[:32]


class Dispatcher:
    def __init__(
        self,
        sessions: SessionFactory,
        channels: Mapping[str, Channel],
        recipient_kinds: RecipientKindRegistry,
        config: DispatcherConfig,
        clock: Clock,
        *,
        attachments_root: Path,
        rng: random.Random | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self.channels = dict(channels)
        self._kinds = recipient_kinds
        self.config = config
        self._clock = clock
        self._attachments_root = attachments_root
        self._observer = observer
        self._rng = rng or random.Random()
        self.owner = f"w-{uuid.uuid4().hex[:12]}"
        self._wake = {name: asyncio.Event() for name in self.channels}
        self._workers: list[asyncio.Task[None]] = []
        self._messages: dict[int, OutgoingMessage] = {}
        self._cancelled: set[int] = set()
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._stopping = False
        # Keys given to batches in this process, newer than what their rows were claimed with.
        self._sent_keys: dict[int, str] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        # Deliveries claimed and not yet recorded. Only these have their lease renewed: if a batch
        # dies without recording (its task failed), its rows lapse and the rescue returns them.
        self._working: set[int] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.rescue()
        for name in self.channels:
            self._workers.append(asyncio.create_task(self._worker(name), name=f"dispatch-{name}"))
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="dispatch-heartbeat")

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop claiming, let batches in flight finish (up to ``grace_seconds``), then cancel.

        Whatever is cancelled mid-batch goes back to ``pending`` (or is rescued by the lease)."""
        self._stopping = True
        self.wake()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        if self._workers:
            _, unfinished = await asyncio.wait(self._workers, timeout=grace_seconds)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        for channel in self.channels.values():
            await channel.close()

    async def renew_leases(self) -> int:
        if not self._working:
            return 0
        async with self._sessions.begin() as session:
            until = self._clock() + timedelta(seconds=self.config.lease_seconds)
            return await outbox.extend_leases(
                session, owner=self.owner, ids=sorted(self._working), until=until
            )

    async def _heartbeat(self) -> None:
        """Renew this worker's leases well before they expire; a dead worker stops renewing."""
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)  # a period, not synchronisation
            try:
                await self.renew_leases()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: the next beat tries again
                log.exception("could not renew delivery leases")

    def wake(self, channel: str | None = None) -> None:
        """New deliveries were queued: look now instead of at the next poll."""
        for name, event in self._wake.items():
            if channel is None or name == channel:
                event.set()

    async def rescue(self) -> int:
        async with self._sessions.begin() as session:
            rescued = await outbox.rescue_expired(session, self._clock())
        if rescued:
            log.warning("rescued %d deliveries left in flight by a stopped worker", rescued)
            self.wake()
        return rescued

    async def cancel(self, message_id: int) -> int:
        """Stop a message now: pending deliveries are cancelled, claimed ones are not sent."""
        self._cancelled.add(message_id)
        async with self._sessions.begin() as session:
            cancelled = await outbox.cancel_message(session, message_id, self._clock())
        return cancelled

    # --- the worker --------------------------------------------------------------------------

    async def _worker(self, channel: str) -> None:
        inflight: set[asyncio.Task[int]] = set()
        wake = self._wake[channel]
        try:
            while not self._stopping:
                try:
                    while len(inflight) >= self.config.max_inflight_batches:
                        _, inflight = await asyncio.wait(
                            inflight, return_when=asyncio.FIRST_COMPLETED
                        )
                    claimed = await self._claim(channel)
                    if claimed:
                        task = asyncio.create_task(self._process(channel, claimed))
                        task.add_done_callback(_log_failure)
                        inflight.add(task)
                        continue
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.config.idle_poll_seconds)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database went away, a bug: log, wait, keep working
                    log.exception("dispatcher worker for %s failed; retrying shortly", channel)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.config.idle_poll_seconds)
            if inflight:
                await asyncio.wait(inflight)  # a clean stop finishes what it handed out
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def run_once(self, channel: str) -> int:
        """Claim and deliver one batch in the foreground; the number of deliveries handled."""
        claimed = await self._claim(channel)
        return await self._process(channel, claimed) if claimed else 0

    async def drain(self, channel: str | None = None) -> int:
        """Deliver everything due now (for the CLI and tests); the number handled."""
        total = 0
        for name in [channel] if channel else list(self.channels):
            while handled := await self.run_once(name):
                total += handled
        return total

    async def _claim(self, channel: str) -> list[ClaimedDelivery]:
        now = self._clock()
        async with self._sessions.begin() as session:
            claimed = await outbox.claim(
                session,
                channel=channel,
                limit=self.config.batch_size,
                now=now,
                lease_until=now + timedelta(seconds=self.config.lease_seconds),
                owner=self.owner,
            )
        self._working.update(d.id for d in claimed)
        return claimed

    async def _process(self, channel_name: str, claimed: list[ClaimedDelivery]) -> int:
        try:
            return await self._deliver_and_record(channel_name, claimed)
        finally:
            self._working.difference_update(d.id for d in claimed)

    async def _deliver_and_record(self, channel_name: str, claimed: list[ClaimedDelivery]) -> int:
        channel = self.channels[channel_name]
        try:
            messages = await self._load_messages({d.message_id for d in claimed})
            live = [d for d in claimed if d.message_id not in self._cancelled]
            results = await asyncio.gather(
                *(
                    self._send_group(channel, messages[group[0].message_id], group)
                    for group in self._group(channel, live)
                )
            )
        except asyncio.CancelledError:
            async with self._sessions.begin() as session:  # shutting down: hand the batch back
                await outbox.release(
                    session, owner=self.owner, ids=[d.id for d in claimed], now=self._clock()
                )
            raise
        cancelled = [
            DeliveryUpdate(
                d.id, DeliveryStatus.CANCELLED, d.attempts - 1, "cancelled before sending"
            )
            for d in claimed
            if d.message_id in self._cancelled
        ]
        await self._record(live, [r for group in results for r in group], cancelled)
        return len(claimed)

    def _group(
        self, channel: Channel, claimed: list[ClaimedDelivery]
    ) -> list[list[ClaimedDelivery]]:
        if channel.max_batch <= 1:
            return [[d] for d in claimed]
        groups: dict[tuple[int, str | None], list[ClaimedDelivery]] = defaultdict(list)
        for delivery in claimed:  # a rescued batch stays together so it can be probed as one
            groups[(delivery.message_id, delivery.batch_key)].append(delivery)
        chunks: list[list[ClaimedDelivery]] = []
        for (_, key), members in groups.items():
            size = len(members) if key else channel.max_batch
            chunks.extend(members[i : i + size] for i in range(0, len(members), size))
        return chunks

    async def _send_group(
        self, channel: Channel, message: OutgoingMessage, group: list[ClaimedDelivery]
    ) -> list[DeliveryResult]:
        if message.id in self._cancelled:
            return [DeliveryResult(d.id, Outcome.FAILED, "cancelled before sending") for d in group]
        deliveries = [_as_delivery(d) for d in group]
        async with self._semaphore:
            started = time.perf_counter()
            try:
                if channel.max_batch > 1:
                    results = await self._send_batch(channel, message, group, deliveries)
                else:
                    results = await channel.send(message, deliveries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a channel bug must not lose deliveries: retry them
                log.exception("channel %s failed on message %s", channel.name, message.id)
                results = DeliveryResult.for_all(
                    deliveries, Outcome.RETRY, detail=f"internal error: {type(exc).__name__}"
                )
            per_delivery = (time.perf_counter() - started) / max(1, len(results))
            if self._observer is not None:
                for result in results:
                    self._observer.delivery(channel.name, result.outcome.value, per_delivery)
            return results

    async def _send_batch(
        self,
        channel: Channel,
        message: OutgoingMessage,
        group: list[ClaimedDelivery],
        deliveries: list[Delivery],
    ) -> list[DeliveryResult]:
        if group[0].batch_key is not None:  # sent before a crash or a transient error?
            probed = await channel.probe(message, deliveries)
            if probed is not None:
                return probed
        key = make_batch_key(message.id, group[0].id, group[0].attempts)
        async with self._sessions.begin() as session:
            await outbox.set_batch_key(session, [d.id for d in group], key)
        self._sent_keys.update((d.id, key) for d in group)
        keyed = [Delivery(**{**d.__dict__, "batch_key": key}) for d in deliveries]
        return await channel.send(message, keyed)

    # --- recording ---------------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        base = self.config.backoff_base_seconds * 2.0 ** max(0, attempts - 1)
        return min(self.config.backoff_max_seconds, base) * self._rng.uniform(0.5, 1.5)

    def _update_for(
        self, delivery: ClaimedDelivery, result: DeliveryResult, now: datetime
    ) -> DeliveryUpdate:
        attempts = delivery.attempts if result.counts_as_attempt else delivery.attempts - 1
        # A batch sent under a new key keeps it, so a lost answer is probed rather than resent.
        key = self._sent_keys.pop(delivery.id, delivery.batch_key)
        if (
            message_cancelled := delivery.message_id in self._cancelled
            and result.outcome is Outcome.FAILED
        ):
            return DeliveryUpdate(
                delivery.id, DeliveryStatus.CANCELLED, attempts - 1, result.detail
            )
        del message_cancelled
        if result.outcome is Outcome.RETRY:
            if attempts >= self.config.max_attempts:
                return DeliveryUpdate(
                    delivery.id,
                    DeliveryStatus.FAILED,
                    attempts,
                    detail=f"gave up after {attempts} attempts: {result.detail}",
                    last_error=result.detail,
                    batch_key=key,
                )
            if result.retry_after is not None:  # the provider said when: obey, plus a little spread
                delay = result.retry_after + self._rng.uniform(0, 0.5)
            else:
                delay = self._backoff(attempts)
            return DeliveryUpdate(
                delivery.id,
                DeliveryStatus.PENDING,
                attempts,
                detail=f"will retry: {result.detail}",
                last_error=result.detail,
                next_attempt_at=now + timedelta(seconds=delay),
                batch_key=key,
            )
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
            batch_key=key,
        )

    async def _record(
        self,
        claimed: Sequence[ClaimedDelivery],
        results: Sequence[DeliveryResult],
        decided: Sequence[DeliveryUpdate] = (),
    ) -> None:
        now = self._clock()
        by_id = {d.id: d for d in claimed}
        updates = [
            self._update_for(by_id[r.delivery_id], r, now)
            for r in results
            if r.delivery_id in by_id
        ]
        missing = by_id.keys() - {r.delivery_id for r in results}
        updates += [  # a channel that forgot a delivery: retry it rather than lose it
            self._update_for(
                by_id[i], DeliveryResult(i, Outcome.RETRY, "no result from channel"), now
            )
            for i in missing
        ]
        updates += decided
        blocked = [by_id[r.delivery_id] for r in results if r.outcome is Outcome.BLOCKED]
        migrated = [(by_id[r.delivery_id].address, r.new_address) for r in results if r.new_address]
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                async with self._sessions.begin() as session:
                    touched = await outbox.record(session, owner=self.owner, updates=updates)
                    await outbox.finish_messages(session, touched, now)
                    await flag_blocked_chats(session, self._kinds, _chat_ids(blocked))
                    for old, new in migrated:
                        if new is not None and _is_chat_id(old):
                            await move_chat(session, self._kinds, int(old), int(new))
                return
            except Exception as exc:
                # The outcomes are known: losing them would mean sending again after the lease
                # lapses. A deadlock victim or a serialization failure succeeds when retried.
                if attempt == _RECORD_ATTEMPTS or not _is_retryable_conflict(exc):
                    raise
                log.warning("recording %d outcomes hit %s; retrying", len(updates), exc)

    # --- message data ------------------------------------------------------------------------

    async def _load_messages(self, ids: set[int]) -> dict[int, OutgoingMessage]:
        missing = [i for i in ids if i not in self._messages]
        async with self._sessions() as session:
            self._cancelled |= await outbox.cancelled_among(session, ids)
            rows = await load_outgoing(session, missing)
        if len(self._messages) + len(rows) > MESSAGE_CACHE_SIZE:
            # Forget messages no batch in hand needs; the ones asked for now stay.
            for message_id in [i for i in self._messages if i not in ids]:
                del self._messages[message_id]
        root = self._attachments_root
        for row in rows:
            self._messages[row.id] = OutgoingMessage(
                id=row.id,
                channel=row.channel,
                subject=row.subject,
                body=row.body,
                body_html=row.body_html,
                attachments=tuple(
                    StoredAttachment(
                        a.file_name, a.content_type, a.size, a.sha256, root / a.storage_path
                    )
                    for a in row.attachments
                ),
                extra=row.extra,
            )
        return {i: self._messages[i] for i in ids}


_RECORD_ATTEMPTS = 3
_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _is_retryable_conflict(exc: BaseException) -> bool:
    """PostgreSQL gave up on this transaction to let another one through (asyncpg raises it
    directly from our raw statements, SQLAlchemy wraps it from the others)."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__):
        if getattr(error, "sqlstate", None) in _CONFLICT_SQLSTATES:
            return True
    return False


def _is_chat_id(address: str) -> bool:
    return address.lstrip("-").isdigit()


def _chat_ids(deliveries: Sequence[ClaimedDelivery]) -> list[int]:
    return sorted({int(d.address) for d in deliveries if _is_chat_id(d.address)})


def _as_delivery(d: ClaimedDelivery) -> Delivery:
    return Delivery(
        d.id, d.message_id, d.recipient_kind, d.recipient_id, d.address, d.attempts, d.batch_key
    )


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("delivery batch failed: %r", exc, exc_info=exc)
