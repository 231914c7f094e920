"""The webhook sender: the outbox worker of delivery-status webhooks.

It claims due events (``persistence.webhook_queries.claim``, under a lease, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL) and POSTs each as signed JSON to its endpoint. At least once: an event
stays in the database until an attempt is recorded, and a sender that dies leaves it to the
next once its lease runs out.

- 2xx is delivered. 5xx, 408, 429, timeouts and refused or reset connections are transient:
  tried again after a capped exponential back-off with jitter, up to ``max_attempts`` (by
  default twelve tries over more than an hour). Any other answer (4xx, and 3xx: redirects are
  never followed) is a permanent failure, and so is a URL that resolves to an inside address
  (``channels.webhook_urls``). Every attempt is recorded with its status code or error.
- Each endpoint has its own few slots (``per_endpoint_concurrency``): a slow or dead endpoint
  only ever holds its own, so it never delays another endpoint's events.
- It runs apart from the dispatcher (its own task, its own short transactions), so webhooks
  never hold up the deliveries themselves.

The signature: ``Herald-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` with
``Herald-Timestamp`` (Unix seconds) and ``Herald-Event-Id``. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp

from channels.backoff import Backoff, FailureEpisode
from channels.clock import Clock, wait_event
from channels.webhook_urls import (
    GuardedResolver,
    Resolve,
    UnsafeUrlError,
    UrlPolicy,
    check_url,
    system_resolve,
)
from persistence import webhook_queries as sql
from persistence.availability import database_unavailable
from persistence.database import SessionFactory
from persistence.models import WebhookEventStatus
from persistence.webhook_queries import AttemptOutcome, ClaimedEvent

log = logging.getLogger(__name__)

USER_AGENT = "Herald-Webhooks/1"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
_ERROR_CHARS = 300
_URL_CHECK_SECONDS = 30.0  # how long a URL's resolved-and-allowed verdict is trusted


@dataclass(frozen=True)
class WebhookConfig:
    timeout_seconds: float = 5.0
    max_attempts: int = 12
    backoff_base_seconds: float = 15.0
    backoff_max_seconds: float = 1800.0
    per_endpoint_concurrency: int = 4
    concurrency: int = 64
    # While this process is sending deliveries, events go in rounds of at most this many POSTs,
    # a round at most every ``busy_round_seconds``, claimed and recorded in one transaction
    # each: events then wait a little, so that they never slow the broadcasts they report on.
    busy_concurrency: int = 16
    busy_round_seconds: float = 0.25
    lease_seconds: float = 60.0
    idle_poll_seconds: float = 1.0
    max_response_bytes: int = 64 * 1024
    policy: UrlPolicy = field(default_factory=UrlPolicy)


def event_body(event: ClaimedEvent) -> bytes:
    """The JSON an endpoint receives (the same bytes on every attempt)."""
    document = {
        "id": event.id,
        "type": event.event_type,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``timestamp.body`` under ``secret``."""
    signed = timestamp.encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def retry_delay(attempt: int, config: WebhookConfig, rng: random.Random) -> float:
    """The wait after failed attempt ``attempt`` (1-based): doubling from the base up to the cap,
    spread over ±50 % so that retries to one receiver do not arrive in step."""
    base, cap = config.backoff_base_seconds, config.backoff_max_seconds
    return min(cap, base * 2.0 ** min(attempt - 1, 60)) * rng.uniform(0.5, 1.5)


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    error: str | None
    transient: bool
    delivered: bool


class WebhookSender:
    def __init__(
        self,
        sessions: SessionFactory,
        config: WebhookConfig,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        resolve: Resolve = system_resolve,
        deliveries_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self._sessions = sessions
        self.config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self._resolve = resolve
        self._deliveries_busy = deliveries_busy
        self.owner = f"wh-{uuid.uuid4().hex[:12]}"
        self._http: aiohttp.ClientSession | None = None
        self._inflight: Counter[int] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._url_checks: dict[str, tuple[float, str | None]] = {}
        self._unrecorded: list[tuple[AttemptOutcome, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._next_busy_round = 0.0
        self._busy_round_claimed = False
        self._episode = FailureEpisode("webhook sender", log, backoff=Backoff(1.0, 30.0, self._rng))

    # --- lifecycle ---------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.config.policy),
                limit=self.config.concurrency,
                limit_per_host=0,
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds),
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
            )
        return self._http

    async def start(self) -> None:
        if self._loop_task is None:
            self._stopping.clear()
            self._loop_task = asyncio.create_task(self._loop(), name="webhook-sender")

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop claiming; attempts in flight get ``grace_seconds``, the rest go back."""
        self._stopping.set()
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def wake(self, _payload: str | None = None) -> None:
        """New events were written: look now instead of at the next poll."""
        self._wake.set()

    # --- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        rescue_every = self.config.lease_seconds / 3
        next_rescue = 0.0
        while not self._stopping.is_set():
            self._wake.clear()  # before looking: a wake during the claim is not lost
            try:
                if time.monotonic() >= next_rescue:
                    await self.rescue()
                    next_rescue = time.monotonic() + rescue_every
                started = await self._claim_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away, a bug: back off, go on
                await wait_event(self._stopping, self._episode.failed(exc))
                continue
            self._episode.recovered()
            if not started:
                await wait_event(self._wake, self._until_next_look())

    def _until_next_look(self) -> float:
        """The idle poll; or, while deliveries run and the last round found events, the time
        until the next round may start."""
        wait = self.config.idle_poll_seconds
        if self._busy_round_claimed and not self._inflight and self._deliveries_busy():
            wait = min(wait, max(0.0, self._next_busy_round - time.monotonic()))
        return wait

    async def rescue(self) -> int:
        """Events left ``sending`` by a sender that died are due again once their lease ran
        out (this sender's own are never expired: each attempt ends within the lease)."""
        async with self._sessions.begin() as session:
            return await sql.rescue_expired(session, self._clock())

    async def run_once(self) -> int:
        """Claim what is due now and wait for every attempt (the tests' and the CLI's step)."""
        await self._claim_round()
        handled = len(self._tasks)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return handled

    async def drain(self, *, rounds: int = 1000) -> int:
        """Deliver everything due now, retrying nothing that is not yet due; the attempts made."""
        total = 0
        for _ in range(rounds):
            handled = await self.run_once()
            if not handled:
                break
            total += handled
        return total

    async def _claim_round(self) -> int:
        config = self.config
        busy = self._deliveries_busy()
        if busy:
            if self._inflight or time.monotonic() < self._next_busy_round:
                return 0
            self._next_busy_round = time.monotonic() + config.busy_round_seconds
        limit = config.busy_concurrency if busy else config.concurrency
        free = limit - sum(self._inflight.values())
        if free <= 0:
            return 0
        now = self._clock()
        async with self._sessions.begin() as session:
            endpoints = await sql.due_endpoints(session, now)
            slots: dict[int, int] = {}
            for endpoint_id in endpoints:
                room = min(config.per_endpoint_concurrency - self._inflight[endpoint_id], free)
                if room > 0:
                    slots[endpoint_id] = room
                    free -= room
                if free <= 0:
                    break
            if not slots:
                self._busy_round_claimed = False
                return 0
            claimed = await sql.claim(
                session,
                now=now,
                lease_until=now + timedelta(seconds=config.lease_seconds),
                owner=self.owner,
                slots=slots,
            )
        self._busy_round_claimed = busy and bool(claimed)
        for event in claimed:
            self._inflight[event.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(event), name=f"webhook-{event.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("a webhook attempt failed unexpectedly", exc_info=exc)

    # --- one attempt -------------------------------------------------------------------------

    async def _deliver(self, event: ClaimedEvent) -> None:
        try:
            attempted_at = self._clock()
            started = time.monotonic()
            answer = await self._attempt(event)
            duration_ms = int((time.monotonic() - started) * 1000)
            outcome = self._outcome(event, answer, attempted_at, duration_ms)
            await self._record(outcome)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as session:
                    await sql.release(session, owner=self.owner, ids=[event.id], now=self._clock())
            raise
        finally:
            endpoint = event.endpoint_id
            self._inflight[endpoint] -= 1
            left = self._inflight[endpoint]
            if left <= 0:
                del self._inflight[endpoint]
            self._start_recorder()  # this attempt may have been the one its round waited for
            # Claim again once half the endpoint's slots are free (or all): a claim per batch,
            # not per event.
            if left <= self.config.per_endpoint_concurrency // 2:
                self._wake.set()

    def _outcome(
        self, event: ClaimedEvent, answer: _Answer, at: datetime, duration_ms: int
    ) -> AttemptOutcome:
        if answer.delivered:
            status, next_at = WebhookEventStatus.DELIVERED, None
        elif answer.transient and event.attempts < self.config.max_attempts:
            delay = retry_delay(event.attempts, self.config, self._rng)
            status, next_at = WebhookEventStatus.PENDING, at + timedelta(seconds=delay)
        else:
            status, next_at = WebhookEventStatus.FAILED, None
        error = answer.error
        if status is WebhookEventStatus.FAILED and answer.transient:
            error = f"{error}; gave up after {event.attempts} attempts"
        return AttemptOutcome(
            event_id=event.id,
            attempt=event.attempts,
            attempted_at=at,
            duration_ms=duration_ms,
            status_code=answer.status_code,
            error=error,
            status=status,
            next_attempt_at=next_at,
        )

    async def _record(self, outcome: AttemptOutcome) -> None:
        """Write the attempt together with the others that ended meanwhile: one transaction
        for many events, so thousands of events a minute cost the dispatcher's loop little."""
        done = asyncio.get_running_loop().create_future()
        self._unrecorded.append((outcome, done))
        self._start_recorder()
        await asyncio.shield(done)

    def _start_recorder(self) -> None:
        """Write what ended, unless deliveries are running and attempts of this round are still
        out: then the last one to end (or to give up) writes the round in one transaction."""
        if not self._unrecorded or (self._recorder is not None and not self._recorder.done()):
            return
        if self._deliveries_busy() and len(self._unrecorded) < sum(self._inflight.values()):
            return
        self._recorder = asyncio.create_task(self._record_all(), name="webhook-recorder")

    async def _record_all(self) -> None:
        """Write what has ended until nothing is left; while the database is away, keep trying
        (the lease may lapse and another sender try the events again: at least once)."""
        await asyncio.sleep(0)  # let the attempts ending in this same turn of the loop join
        backoff = Backoff(0.5, 10.0, self._rng)
        while self._unrecorded:
            batch, self._unrecorded = self._unrecorded, []
            try:
                async with self._sessions.begin() as session:
                    await sql.record_attempts(
                        session, owner=self.owner, outcomes=[outcome for outcome, _ in batch]
                    )
            except Exception as exc:
                unavailable = database_unavailable(exc) is not None
                if unavailable and not self._stopping.is_set():
                    self._unrecorded[:0] = batch
                    await wait_event(self._stopping, backoff.next_delay())
                    continue
                for _, done in batch:  # a bug fails its attempts; a stop leaves them to lapse
                    if not done.done():
                        if unavailable:
                            done.set_result(None)
                        else:
                            done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _allowed(self, url: str) -> str | None:
        """Why ``url`` may not be called now (resolved again every ``_URL_CHECK_SECONDS``)."""
        now = time.monotonic()
        cached = self._url_checks.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            await check_url(url, self.config.policy, self._resolve)
            verdict = None
        except UnsafeUrlError as exc:
            verdict = str(exc)
        if len(self._url_checks) > 1000:
            self._url_checks.clear()
        self._url_checks[url] = (now + _URL_CHECK_SECONDS, verdict)
        return verdict

    async def _attempt(self, event: ClaimedEvent) -> _Answer:
        refused = await self._allowed(event.url)
        if refused is not None:
            return _Answer(None, f"refused: {refused}", transient=False, delivered=False)
        body = event_body(event)
        timestamp = str(int(self._clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "Herald-Event-Id": event.id,
            "Herald-Event-Type": event.event_type,
            "Herald-Timestamp": timestamp,
            "Herald-Signature": sign(event.secret, timestamp, body),
        }
        try:
            async with self._client().post(
                event.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                head = await self._read_capped(response)
                code = response.status
        except TimeoutError:
            timeout = self.config.timeout_seconds
            return _Answer(None, f"timed out after {timeout:g} s", transient=True, delivered=False)
        except aiohttp.InvalidURL:
            return _Answer(None, "not a valid URL", transient=False, delivered=False)
        except (aiohttp.ClientError, OSError) as exc:
            return _Answer(None, _describe(exc), transient=True, delivered=False)
        if 200 <= code < 300:
            return _Answer(code, None, transient=False, delivered=True)
        excerpt = head.decode("utf-8", "replace").strip()[:_ERROR_CHARS]
        if 300 <= code < 400:
            location = response.headers.get("Location", "")[:200]
            error = f"HTTP {code}: redirects are not followed (Location: {location or '-'})"
            return _Answer(code, error, transient=False, delivered=False)
        transient = code >= 500 or code in TRANSIENT_STATUSES
        error = f"HTTP {code}" + (f": {excerpt}" if excerpt else "")
        return _Answer(code, error, transient=transient, delivered=False)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        """At most ``max_response_bytes`` of the answer (the rest is never read)."""
        cap = self.config.max_response_bytes
        head = bytearray()
        read = 0
        while read < cap:
            part = await response.content.read(cap - read)
            if not part:
                break
            read += len(part)
            if len(head) < _ERROR_CHARS * 4:
                head += part[: _ERROR_CHARS * 4 - len(head)]
        if read >= cap:
            response.close()  # the connection goes with the unread rest
        return bytes(head)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:_ERROR_CHARS]
