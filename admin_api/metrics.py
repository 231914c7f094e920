"""The service's Prometheus metrics, served at ``/metrics`` (prometheus_client).

One :class:`Metrics` object lives in the composition root's context: the dispatcher reports each
delivery outcome (it is the channels' ``DeliveryObserver``), the bot each update handled, the
admin API each HTTP request. Each object has its own registry, with the process and platform
collectors on it, so several services in one test process do not share counters. The outbox's
queue depth lives in the database and is read at scrape time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST
DEFAULT_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters, a latency histogram and gauges for the whole process."""

    def __init__(self, latency_buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._deliveries = Counter(
            "herald_deliveries",
            "Deliveries that reached a status.",
            ["channel", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "herald_send_latency_seconds",
            "Time a provider took to take a delivery.",
            ["channel"],
            buckets=sorted(latency_buckets),
            registry=self.registry,
        )
        self._updates = Counter(
            "herald_telegram_updates", "Telegram updates handled.", registry=self.registry
        )
        self._http = Counter(
            "herald_http_requests",
            "Admin API requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self._loop_failures = Counter(
            "herald_loop_failures",
            "Failed iterations of a background loop (worker, heartbeat, job), by loop.",
            ["loop"],
            registry=self.registry,
        )
        self._breaker_open = Gauge(
            "herald_breaker_open",
            "1 while a channel's circuit breaker holds its sends back (open or probing).",
            ["channel"],
            registry=self.registry,
        )
        self._database_unavailable = Counter(
            "herald_database_unavailable",
            "Operations that failed because the database was unreachable, per component.",
            ["component"],
            registry=self.registry,
        )
        self._leads = Gauge(
            "herald_leadership",
            "1 while this process holds the leadership (telegram:<bot>, scheduler...).",
            ["name"],
            registry=self.registry,
        )
        self._role = Gauge(
            "herald_role",
            "This process's role (all, web or worker): 1 for the one it runs.",
            ["role"],
            registry=self.registry,
        )
        self._queue_depth = Gauge(
            "herald_queue_depth",
            "Deliveries pending or in flight, per channel.",
            ["channel"],
            registry=self.registry,
        )

    # --- recording --------------------------------------------------------------------------

    def delivery(self, channel: str, status: str, seconds: float | None = None) -> None:
        """One delivery reached ``status``; ``seconds`` is how long the provider call took."""
        self._deliveries.labels(channel, status).inc()
        if seconds is not None and seconds >= 0:
            self._latency.labels(channel).observe(seconds)

    def loop_failure(self, loop: str) -> None:
        self._loop_failures.labels(loop).inc()

    def breaker_state(self, channel: str, state: str) -> None:
        self._breaker_open.labels(channel).set(0 if state == "closed" else 1)

    def database_unavailable(self, component: str) -> None:
        """``component`` (e.g. "api") could not reach the database once."""
        self._database_unavailable.labels(component).inc()

    def leadership(self, name: str, held: bool) -> None:
        self._leads.labels(name).set(1 if held else 0)

    def role(self, role: str) -> None:
        self._role.labels(role).set(1)

    def update_handled(self) -> None:
        self._updates.inc()

    def http_request(self, route: str, status: int) -> None:
        self._http.labels(route, str(status)).inc()

    # --- reading ----------------------------------------------------------------------------

    def render(self, queue_depth: Mapping[str, int] | None = None) -> bytes:
        """The exposition text; ``queue_depth`` (per channel) is left out when unknown."""
        self._queue_depth.clear()
        for channel, depth in (queue_depth or {}).items():
            self._queue_depth.labels(channel).set(depth)
        return generate_latest(self.registry)
