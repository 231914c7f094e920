"""The dispatcher: the outbox worker that delivers queued messages over the channels.

One worker per channel claims due deliveries in batches under a lease, hands them to the channel
(grouped per message for batching channels, concurrently for per-recipient ones), and records the
outcomes in bulk as they come in (a slice at a time, so a broadcast's counters move every
fraction of a second): success, another try later, or a final failure. Delivery is
at-least-once: a crash leaves rows ``sending`` until their lease expires and the rescue puts them
back; duplicates are bounded by what was in flight.

Faults do not turn into duplicates or floods:
- outcomes of a batch that was sent stay in memory and are recorded as soon as the database
  answers again, while the heartbeat keeps the batch's lease alive, so an outage shorter than the
  lease sends nothing twice;
- every loop backs off on errors and logs once per failure episode (``channels/backoff.py``);
- a channel whose provider is down pauses behind its circuit breaker (``channels/breaker.py``)
  and probes it one delivery at a time; waiting deliveries spend no attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from channels.backoff import Backoff, FailureEpisode, LoopObserver
from channels.base import (
    Channel,
    Delivery,
    DeliveryObserver,
    DeliveryResult,
    GroupingChannel,
    Outcome,
    OutgoingMessage,
    StoredAttachment,
)
from channels.breaker import BreakerConfig, BreakerState, CircuitBreaker
from channels.clock import Clock, wait_event
from channels.outcome_policy import OutcomePolicy, RetryPolicy
from persistence import outbox
from persistence.audit import Actor
from persistence.availability import database_unavailable
from persistence.database import SessionFactory
from persistence.outbox import ClaimedDelivery
from persistence.outgoing import load_outgoing
from persistence.preferences import PendingDelivery, refused_deliveries
from persistence.recipient_kinds import RecipientKindRegistry
from persistence.registration import flag_blocked_chats, move_chat

log = logging.getLogger(__name__)

T = TypeVar("T")


class DispatchObserver(DeliveryObserver, LoopObserver, Protocol):
    """What the service's metrics learn from the dispatcher."""

    def breaker_state(self, channel: str, state: str) -> None: ...


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
    # Outcomes are written back in slices of at most this many, or after this long.
    record_slice: int = 250
    record_interval_seconds: float = 0.25
    # Messages whose content stays in memory between batches (a broadcast is many batches).
    message_cache_size: int = 2000
    deadlines: Mapping[str, timedelta] = field(default_factory=dict)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    # Back-off of the loops when the database is away: first and longest wait.
    error_backoff: tuple[float, float] = (1.0, 30.0)

    @property
    def in_flight_limit(self) -> int:
        """The most deliveries one worker can have handed out at once (bounds crash duplicates)."""
        return self.batch_size * self.max_inflight_batches

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            deadlines=self.deadlines,
        )


def make_batch_key(message_id: int, first_delivery_id: int, attempt: int) -> str:
    """A provider order id for a batch: ≤ 32 chars of [A-Za-z0-9_.-], the same on a probe."""
    return f"h{message_id}-{first_delivery_id}-{attempt}"[:32]


Outcomes = list[tuple[ClaimedDelivery, DeliveryResult]]


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
        observer: DispatchObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self.channels = dict(channels)
        self._kinds = recipient_kinds
        self.config = config
        self._clock = clock
        self._attachments_root = attachments_root
        self._observer = observer
        self._rng = rng or random.Random()
        self._outcomes = OutcomePolicy(config.retry_policy, self._rng)
        self.owner = f"w-{uuid.uuid4().hex[:12]}"
        self.breakers = {
            name: CircuitBreaker(name, clock, config.breaker) for name in self.channels
        }
        self._wake = {name: asyncio.Event() for name in self.channels}
        self._stop_requested = asyncio.Event()
        self._workers: dict[str, asyncio.Task[None]] = {}
        # A channel may send only while its gate is open (the Telegram leadership): checked
        # right before every send, so a process that lost it stops at once.
        self._gates: dict[str, Callable[[], bool]] = {}
        self._closing: set[str] = set()  # channels whose worker is asked to finish
        self._messages: dict[int, OutgoingMessage] = {}
        self._first_due: dict[int, datetime] = {}
        self._cancelled: set[int] = set()
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._stopping = False
        # Keys given to batches in this process, newer than what their rows were claimed with.
        self._sent_keys: dict[int, str] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        # Deliveries claimed and not yet recorded. Only these have their lease renewed (and the
        # rescue in this process leaves them alone): if a batch dies without recording (its
        # task failed), its rows lapse and the rescue returns them.
        self._working: set[int] = set()
        self._episodes: dict[str, FailureEpisode] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, channels: Collection[str] | None = None) -> None:
        """Rescue what dead workers left, then run a worker for each of ``channels`` (all by
        default; others can be started later, e.g. Telegram once this process leads it)."""
        await self.rescue()
        for name in self.channels if channels is None else channels:
            self.start_channel(name)
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="dispatch-heartbeat")

    def start_channel(self, name: str) -> None:
        if name not in self._workers and not self._stopping:
            self._workers[name] = asyncio.create_task(self._worker(name), name=f"dispatch-{name}")

    async def stop_channel(self, name: str, *, grace_seconds: float = 0.0) -> None:
        """Stop one channel's worker: batches in flight get ``grace_seconds`` to finish, then
        they are cancelled (what was not sent goes back to ``pending``)."""
        task = self._workers.pop(name, None)
        if task is None:
            return
        self._closing.add(name)
        self.wake(name)
        try:
            await _finish([task], grace_seconds)
        finally:
            self._closing.discard(name)

    def set_gate(self, channel: str, gate: Callable[[], bool]) -> None:
        self._gates[channel] = gate

    def running_channels(self) -> list[str]:
        return sorted(self._workers)

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop claiming, let batches in flight finish (up to ``grace_seconds``), then cancel.

        Whatever is cancelled mid-batch goes back to ``pending`` (or is rescued by the lease)."""
        self._stopping = True
        self._stop_requested.set()
        self.wake()
        workers = list(self._workers.values())
        self._workers.clear()
        await _finish(workers, grace_seconds)
        if self._heartbeat_task is not None:  # last: batches finishing above keep their leases
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        for channel in self.channels.values():
            await channel.close()

    def _episode(self, loop: str) -> FailureEpisode:
        """The failure episode of a loop: one per name, shared by the batches doing that work,
        so an outage is logged once however many batches wait for it."""
        episode = self._episodes.get(loop)
        if episode is None:
            base, cap = self.config.error_backoff
            episode = self._episodes[loop] = FailureEpisode(
                loop, log, backoff=Backoff(base, cap, self._rng), observer=self._observer
            )
        return episode

    async def _pause(self, seconds: float) -> None:
        """Wait out a back-off; a stop request ends the wait (new deliveries do not)."""
        await wait_event(self._stop_requested, seconds)

    async def renew_leases(self) -> int:
        if not self._working:
            return 0
        async with self._sessions.begin() as session:
            until = self._clock() + timedelta(seconds=self.config.lease_seconds)
            return await outbox.extend_leases(
                session, owner=self.owner, ids=sorted(self._working), until=until
            )

    async def _heartbeat(self) -> None:
        """Renew this worker's leases well before they expire; a dead worker stops renewing.

        While the database is away the renewal is retried sooner, so the leases are renewed as
        soon as it is back (before another process could take the rows over)."""
        interval = self.config.lease_seconds / 3
        episode = self._episode("delivery lease heartbeat")
        delay = interval
        while True:
            await asyncio.sleep(delay)  # a period, not synchronisation
            try:
                await self.renew_leases()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again soon
                delay = min(interval, episode.failed(exc))
                continue
            episode.recovered()
            delay = interval

    def wake(self, channel: str | None = None) -> None:
        """New deliveries were queued: look now instead of at the next poll."""
        for name, event in self._wake.items():
            if channel is None or name == channel:
                event.set()

    async def rescue(self) -> int:
        async with self._sessions.begin() as session:
            rescued = await outbox.rescue_expired(
                session, self._clock(), keep_owner=self.owner, keep_ids=sorted(self._working)
            )
        if rescued:
            log.warning("rescued %d deliveries left in flight by a stopped worker", rescued)
            self.wake()
        return rescued

    async def cancel(self, message_id: int, actor: Actor | None = None) -> int:
        """Stop a message now: pending deliveries are cancelled, claimed ones are not sent.

        With an ``actor``, the audit log records who did it, in the same transaction.
        """
        self._cancelled.add(message_id)
        async with self._sessions.begin() as session:
            cancelled = await outbox.cancel_message(session, message_id, self._clock(), actor)
        return cancelled

    def breaker_states(self) -> dict[str, str]:
        return {name: breaker.state.value for name, breaker in self.breakers.items()}

    # --- the worker --------------------------------------------------------------------------

    async def _worker(self, channel: str) -> None:
        inflight: set[asyncio.Task[int]] = set()
        wake = self._wake[channel]
        breaker = self.breakers[channel]
        episode = self._episode(f"dispatcher worker for {channel}")
        try:
            while not self._stopping and channel not in self._closing:
                try:
                    while len(inflight) >= self.config.max_inflight_batches:
                        _, inflight = await asyncio.wait(
                            inflight, return_when=asyncio.FIRST_COMPLETED
                        )
                    limit = breaker.claim_limit(self.config.batch_size)
                    if limit == 0:  # the provider is down: wait for the next probe
                        await self._idle(wake, breaker.wait_seconds())
                        continue
                    claimed = await self._claim(channel, limit)
                    episode.recovered()
                    if claimed:
                        if breaker.state is BreakerState.HALF_OPEN:
                            breaker.start_probe()
                        task = asyncio.create_task(self._process(channel, claimed))
                        task.add_done_callback(_log_failure)
                        inflight.add(task)
                        continue
                    await self._idle(wake, self.config.idle_poll_seconds)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database went away, a bug: back off, go on
                    await self._pause(episode.failed(exc))
            if inflight:
                await asyncio.wait(inflight)  # a clean stop finishes what it handed out
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _idle(self, wake: asyncio.Event, seconds: float) -> None:
        wake.clear()
        await wait_event(wake, max(0.01, seconds))

    async def run_once(self, channel: str) -> int:
        """Claim and deliver one batch in the foreground; the number of deliveries handled."""
        breaker = self.breakers[channel]
        limit = breaker.claim_limit(self.config.batch_size)
        if limit == 0:
            return 0
        claimed = await self._claim(channel, limit)
        if claimed and breaker.state is BreakerState.HALF_OPEN:
            breaker.start_probe()
        return await self._process(channel, claimed) if claimed else 0

    async def drain(self, channel: str | None = None) -> int:
        """Deliver everything due now (for the CLI and tests); the number handled."""
        total = 0
        for name in [channel] if channel else list(self.channels):
            while handled := await self.run_once(name):
                total += handled
        return total

    async def _claim(self, channel: str, limit: int | None = None) -> list[ClaimedDelivery]:
        now = self._clock()
        async with self._sessions.begin() as session:
            claimed = await outbox.claim(
                session,
                channel=channel,
                limit=limit or self.config.batch_size,
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
        first_due: dict[int, datetime] = {}
        recorder = _Recorder(
            lambda outcomes: self._record_until_done(channel_name, first_due, outcomes),
            self.config.record_slice,
            self.config.record_interval_seconds,
        )
        try:
            messages = await self._until_done(
                f"loading messages for {channel_name}",
                lambda: self._load_messages({d.message_id for d in claimed}),
            )
            first_due.update((i, self._first_due.get(i, self._clock())) for i in messages)
            live = [d for d in claimed if d.message_id not in self._cancelled]
            cancelled = [d for d in claimed if d.message_id in self._cancelled]
            recorder.add([(d, _cancelled(d)) for d in cancelled])
            # The person may have unsubscribed since the broadcast was queued: asked again now.
            refused = await self._until_done(
                f"reading preferences for {channel_name}",
                lambda: self._refused(channel_name, live),
            )
            if refused:
                recorder.add(
                    [
                        (d, DeliveryResult(d.id, Outcome.INVALID, refused[d.id]))
                        for d in live
                        if d.id in refused
                    ]
                )
                live = [d for d in live if d.id not in refused]

            async def send(group: list[ClaimedDelivery]) -> None:
                message = messages[group[0].message_id]
                results = await self._send_group(channel, message, group)
                by_id = {r.delivery_id: r for r in results}
                recorder.add([(d, _result_for(d, by_id)) for d in group])

            groups = self._group(channel, live, messages)
            await asyncio.gather(*(send(group) for group in groups))
            await recorder.close()
        except asyncio.CancelledError:
            # Shutting down: what is known is recorded, the rest is handed back (best effort;
            # whatever cannot be written is rescued when its lease expires).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.shield(recorder.close())
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as session:
                    await outbox.release(
                        session, owner=self.owner, ids=[d.id for d in claimed], now=self._clock()
                    )
            raise
        return len(claimed)

    def _group(
        self,
        channel: Channel,
        claimed: list[ClaimedDelivery],
        messages: Mapping[int, OutgoingMessage],
    ) -> list[list[ClaimedDelivery]]:
        if channel.max_batch <= 1:
            return [[d] for d in claimed]
        groups: dict[tuple[int, str | None, str | None], list[ClaimedDelivery]] = defaultdict(list)
        # A personalised SMS batch has one encoding (channels.base.GroupingChannel).
        grouping = channel if isinstance(channel, GroupingChannel) else None
        for delivery in claimed:  # a rescued batch stays together so it can be probed as one
            part = None
            if grouping is not None and delivery.batch_key is None and delivery.params is not None:
                part = grouping.batch_group(messages[delivery.message_id], _as_delivery(delivery))
            groups[(delivery.message_id, delivery.batch_key, part)].append(delivery)
        chunks: list[list[ClaimedDelivery]] = []
        for (_, key, _part), members in groups.items():
            size = len(members) if key else channel.max_batch
            chunks.extend(members[i : i + size] for i in range(0, len(members), size))
        return chunks

    async def _send_group(
        self, channel: Channel, message: OutgoingMessage, group: list[ClaimedDelivery]
    ) -> list[DeliveryResult]:
        deliveries = [_as_delivery(d) for d in group]
        breaker = self.breakers[channel.name]
        gate = self._gates.get(channel.name)
        async with self._semaphore:
            if message.id in self._cancelled:
                return DeliveryResult.for_all(deliveries, Outcome.FAILED, detail="cancelled")
            if gate is not None and not gate():
                return _held_back(deliveries, breaker, "not sent: this process stopped leading it")
            if not breaker.allows_sending():
                return _held_back(deliveries, breaker)
            started = time.perf_counter()
            try:
                if channel.max_batch > 1:
                    results = await self._send_batch(channel, message, group, deliveries)
                else:
                    results = await channel.send(message, deliveries)
            except asyncio.CancelledError:
                raise
            except _NotStartedError as exc:
                return _held_back(deliveries, breaker, exc.reason)
            except Exception as exc:  # a channel bug must not lose deliveries: retry them
                log.exception("channel %s failed on message %s", channel.name, message.id)
                results = DeliveryResult.for_all(
                    deliveries, Outcome.RETRY, detail=f"internal error: {type(exc).__name__}"
                )
            per_delivery = (time.perf_counter() - started) / max(1, len(results))
            self._observe(channel.name, breaker, results, per_delivery)
            return results

    def _observe(
        self,
        channel: str,
        breaker: CircuitBreaker,
        results: Sequence[DeliveryResult],
        seconds: float,
    ) -> None:
        before = breaker.state
        for result in results:
            breaker.record(result.provider_failed, result.detail)
            if self._observer is not None:
                self._observer.delivery(channel, result.outcome.value, seconds)
        after = breaker.state
        if after is not before:
            if after is BreakerState.OPEN and before is BreakerState.CLOSED:
                log.error(
                    "%s provider is failing (%s): pausing the channel, probing every %g-%g s",
                    channel,
                    breaker.last_failure,
                    breaker.config.open_seconds,
                    breaker.config.max_open_seconds,
                )
            elif after is BreakerState.CLOSED:
                log.warning("%s provider answers again: the channel is sending", channel)
            if self._observer is not None:
                self._observer.breaker_state(channel, after.value)

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
        try:
            async with self._sessions.begin() as session:
                await outbox.set_batch_key(session, [d.id for d in group], key)
        except Exception as exc:
            cause = database_unavailable(exc)
            if cause is None:
                raise
            # Without its key on record the batch must not go out: a lost answer could not be
            # probed for. It waits for the database, unsent.
            raise _NotStartedError(f"waiting for the database ({cause})") from exc
        self._sent_keys.update((d.id, key) for d in group)
        keyed = [Delivery(**{**d.__dict__, "batch_key": key}) for d in deliveries]
        return await channel.send(message, keyed)

    # --- recording ---------------------------------------------------------------------------

    async def _until_done(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it works: an unreachable database is waited for (the leases
        stay alive meanwhile); any other error is a bug and is raised."""
        episode = self._episode(what)
        while True:
            try:
                result = await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unavailable(exc) is None and not _is_retryable_conflict(exc):
                    raise
                await asyncio.sleep(episode.failed(exc))  # a back-off, not synchronisation
                continue
            episode.recovered()
            return result

    async def _record_until_done(
        self, channel: str, first_due: Mapping[int, datetime], outcomes: Outcomes
    ) -> None:
        await self._until_done(
            f"recording {channel} outcomes", lambda: self._record(channel, first_due, outcomes)
        )

    async def _record(
        self, channel: str, first_due: Mapping[int, datetime], outcomes: Outcomes
    ) -> None:
        now = self._clock()
        updates = [
            self._outcomes.update_for(
                d,
                r,
                channel=channel,
                now=now,
                first_due=first_due.get(d.message_id, now),
                # A batch sent under a new key keeps it: a lost answer is probed, not resent.
                batch_key=self._sent_keys.get(d.id, d.batch_key),
                cancelled=d.message_id in self._cancelled,
            )
            for d, r in outcomes
        ]
        blocked = [d for d, r in outcomes if r.outcome is Outcome.BLOCKED]
        migrated = [(d.address, r.new_address) for d, r in outcomes if r.new_address]
        async with self._sessions.begin() as session:
            touched = await outbox.record(session, owner=self.owner, updates=updates, now=now)
            await outbox.finish_messages(session, touched, now)
            await flag_blocked_chats(session, self._kinds, _chat_ids(blocked))
            for old, new in migrated:
                if new is not None and _is_chat_id(old):
                    await move_chat(session, self._kinds, int(old), int(new))
        for delivery, _ in outcomes:
            self._sent_keys.pop(delivery.id, None)

    async def _refused(self, channel: str, claimed: Sequence[ClaimedDelivery]) -> dict[int, str]:
        pending = [
            PendingDelivery(d.id, d.message_id, d.recipient_kind, d.recipient_id) for d in claimed
        ]
        async with self._sessions() as session:
            return await refused_deliveries(session, channel, pending)

    # --- message data ------------------------------------------------------------------------

    async def _load_messages(self, ids: set[int]) -> dict[int, OutgoingMessage]:
        missing = [i for i in ids if i not in self._messages]
        async with self._sessions() as session:
            self._cancelled |= await outbox.cancelled_among(session, ids)
            rows = await load_outgoing(session, missing)
        if len(self._messages) + len(rows) > self.config.message_cache_size:
            # Forget messages no batch in hand needs; the ones asked for now stay.
            for message_id in [i for i in self._messages if i not in ids]:
                del self._messages[message_id]
                self._first_due.pop(message_id, None)
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
            self._first_due[row.id] = row.first_due_at
        return {i: self._messages[i] for i in ids}


class _NotStartedError(Exception):
    """A delivery could not start (its batch key could not be written); nothing was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Recorder:
    """Writes a batch's outcomes as they come in: a slice at a time, or after a short while,
    one write at a time, in the background of the sends."""

    def __init__(
        self,
        write: Callable[[Outcomes], Awaitable[None]],
        slice_size: int,
        interval: float,
    ) -> None:
        self._write = write
        self._slice = slice_size
        self._interval = interval
        self._pending: Outcomes = []
        self._ready = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def add(self, outcomes: Outcomes) -> None:
        if not outcomes:
            return
        self._pending.extend(outcomes)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        if len(self._pending) >= self._slice:
            self._ready.set()

    async def _run(self) -> None:
        while True:
            await wait_event(self._ready, self._interval)
            self._ready.clear()
            while self._pending:
                outcomes, self._pending = self._pending[: self._slice], self._pending[self._slice :]
                await self._write(outcomes)
                if not self._closing and len(self._pending) < self._slice:
                    break
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        """Wait until every outcome added so far is written."""
        self._closing = True
        self._ready.set()
        if self._task is not None:
            await self._task
        elif self._pending:
            await self._write(self._pending)
            self._pending = []


async def _finish(tasks: Sequence[asyncio.Task[None]], grace_seconds: float) -> None:
    if not tasks:
        return
    if grace_seconds > 0:
        _, unfinished = await asyncio.wait(tasks, timeout=grace_seconds)
    else:
        unfinished = set(tasks)
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _cancelled(delivery: ClaimedDelivery) -> DeliveryResult:
    return DeliveryResult(delivery.id, Outcome.FAILED, "cancelled before sending")


def _held_back(
    deliveries: Sequence[Delivery], breaker: CircuitBreaker, reason: str = ""
) -> list[DeliveryResult]:
    """Deliveries that were not sent: back to pending, no attempt spent."""
    wait = breaker.wait_seconds()
    detail = reason or f"not sent: the provider is unavailable ({breaker.last_failure})"
    return DeliveryResult.for_all(
        deliveries,
        Outcome.RETRY,
        detail=detail,
        retry_after=wait if wait > 0 else 1.0,
        counts_as_attempt=False,
    )


def _result_for(delivery: ClaimedDelivery, by_id: Mapping[int, DeliveryResult]) -> DeliveryResult:
    found = by_id.get(delivery.id)
    if found is not None:
        return found
    # A channel that forgot a delivery: retry it rather than lose it.
    return DeliveryResult(delivery.id, Outcome.RETRY, "no result from channel")


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
        d.id,
        d.message_id,
        d.recipient_kind,
        d.recipient_id,
        d.address,
        d.attempts,
        d.batch_key,
        d.params,
    )


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("delivery batch failed: %r", exc, exc_info=exc)
