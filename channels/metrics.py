"""In-process metrics rendered in the Prometheus text exposition format (version 0.0.4).

One :class:`Metrics` object lives in the composition root's context: the dispatcher reports each
delivery outcome, the bot each update handled, the admin API each HTTP request. Everything runs
on one event loop, so plain dictionaries are enough (no locks, no extra dependency). Gauges that
live in the database (the outbox queue depth) are gathered at scrape time and passed to
:meth:`render`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [*labels, extra] if extra is not None else list(labels)
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@dataclass
class _Histogram:
    buckets: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: Labels) -> list[str]:
        out = []
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            cumulative += count
            out.append(f"{name}_bucket{_labels(labels, ('le', _number(bound)))} {cumulative}")
        out.append(f"{name}_bucket{_labels(labels, ('le', '+Inf'))} {self.count}")
        out.append(f"{name}_sum{_labels(labels)} {_number(self.total)}")
        out.append(f"{name}_count{_labels(labels)} {self.count}")
        return out


class Metrics:
    """Counters and a latency histogram for the whole process."""

    def __init__(self, latency_buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        self._buckets = tuple(sorted(latency_buckets))
        self._deliveries: defaultdict[Labels, int] = defaultdict(int)
        self._latency: dict[Labels, _Histogram] = {}
        self._updates = 0
        self._http: defaultdict[Labels, int] = defaultdict(int)
        self._database_unavailable: defaultdict[str, int] = defaultdict(int)

    # --- recording --------------------------------------------------------------------------

    def delivery(self, channel: str, status: str, seconds: float | None = None) -> None:
        """One delivery reached ``status``; ``seconds`` is how long the provider call took."""
        self._deliveries[(("channel", channel), ("status", status))] += 1
        if seconds is not None and seconds >= 0 and math.isfinite(seconds):
            key: Labels = (("channel", channel),)
            histogram = self._latency.get(key)
            if histogram is None:
                histogram = self._latency[key] = _Histogram(self._buckets)
            histogram.observe(seconds)

    def update_handled(self) -> None:
        self._updates += 1

    def http_request(self, route: str, status: int) -> None:
        self._http[(("route", route), ("status", str(status)))] += 1

    def database_unavailable(self, component: str) -> None:
        """``component`` (e.g. "api") could not reach the database once."""
        self._database_unavailable[component] += 1

    # --- reading ----------------------------------------------------------------------------

    def deliveries(self, channel: str, status: str) -> int:
        return self._deliveries.get((("channel", channel), ("status", status)), 0)

    def http_requests(self, route: str, status: int) -> int:
        return self._http.get((("route", route), ("status", str(status))), 0)

    def http_requests_total(self) -> int:
        return sum(self._http.values())

    def database_unavailable_total(self, component: str) -> int:
        return self._database_unavailable.get(component, 0)

    @property
    def updates_handled(self) -> int:
        return self._updates

    def render(self, queue_depth: Mapping[str, int] | None = None) -> str:
        """The exposition text; ``queue_depth`` (per channel) is omitted when unknown."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family("herald_deliveries_total", "counter", "Deliveries that reached a status.")
        for labels, value in sorted(self._deliveries.items()):
            lines.append(f"herald_deliveries_total{_labels(labels)} {value}")
        family(
            "herald_send_latency_seconds", "histogram", "Time a provider took to take a delivery."
        )
        for labels, histogram in sorted(self._latency.items()):
            lines.extend(histogram.lines("herald_send_latency_seconds", labels))
        family("herald_telegram_updates_total", "counter", "Telegram updates handled.")
        lines.append(f"herald_telegram_updates_total {self._updates}")
        family("herald_http_requests_total", "counter", "Admin API requests by route and status.")
        for labels, value in sorted(self._http.items()):
            lines.append(f"herald_http_requests_total{_labels(labels)} {value}")
        family(
            "herald_database_unavailable_total",
            "counter",
            "Operations that failed because the database was unreachable, per component.",
        )
        for component, value in sorted(self._database_unavailable.items()):
            lines.append(
                f"herald_database_unavailable_total{_labels((('component', component),))} {value}"
            )
        if queue_depth is not None:
            family("herald_queue_depth", "gauge", "Deliveries pending or in flight, per channel.")
            for channel, depth in sorted(queue_depth.items()):
                lines.append(f"herald_queue_depth{_labels((('channel', channel),))} {depth}")
        return "\n".join(lines) + "\n"
