"""The web console under load, on PostgreSQL.

1. Pages: the broadcast page and its deliveries table (random pages, a status filter, a search)
   of a 100,000-delivery broadcast, 8 concurrent logged-in clients; target p99 <= 100 ms.
2. Live progress: a Telegram broadcast running at its rate limit (the Bot API simulator in its
   own process), first with nobody watching, then with 200 Server-Sent-Events watchers of its
   page; each watcher records how old its counters were when the next update arrived (target
   <= 1 s) and the broadcast's delivery rate must stay within 5 % of the unwatched one.

This process seeds a throwaway database and serves the real application (``create_app``: API
and console) on loopback; the clients run in a SECOND process (this module with ``--load`` or
``--watch``), so they share the machine's CPUs but not this event loop.

Run: ``.venv/bin/python -m bench.console [--duration S] [--watchers N] [--rate R]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import insert, select

from admin_api.app import create_app
from admin_api.context import ApiContext
from bench._common import bench_settings, simulator_process, throwaway_postgres
from bot import event_loop
from bot.context import TelegramEndpoint
from bot.delivery import build_channels, build_composer, build_dispatcher
from channels.composition import ComposeRequest
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence.database import SessionFactory, create_engine, create_session_factory
from persistence.enqueue import NewDelivery, insert_deliveries
from persistence.models import Customer, Message, User
from persistence.outbox import add_to_counters, read_counters
from persistence.recipient_kinds import default_registry
from persistence.users import hash_password

DELIVERIES = 100_000
USERNAME, PASSWORD = "bench", "bench-password-1"
TOKEN = "123456:SANDBOX-TOKEN"
FIRST_CHAT = 1_000_000
STATUSES = (("success", 0.6), ("pending", 0.3), ("failed", 0.1))


def _now() -> datetime:
    return datetime.now(UTC)


async def _seed(sessions: SessionFactory, recipients: int) -> tuple[str, User]:
    """A user with a password, a 100,000-delivery broadcast, and ``recipients`` linked chats."""
    async with sessions.begin() as session:
        user = User(username=USERNAME, is_superuser=True, password_hash=hash_password(PASSWORD))
        session.add(user)
        await session.execute(
            insert(Customer),
            [{"name": f"C{i}", "telegram_chat_id": FIRST_CHAT + i} for i in range(recipients)],
        )
        broadcast_id = str(uuid.uuid4())
        # On the SMS channel, which this benchmark's dispatcher does not serve: its pending rows
        # stay pending instead of competing with the live broadcast.
        message = Message(
            broadcast_id=broadcast_id,
            channel="sms",
            subject="Benchmark",
            body="Benchmark",
            total=DELIVERIES,
            sender_id=None,
            sender_name=USERNAME,
        )
        session.add(message)
        await session.flush()
        rows: list[NewDelivery] = []
        counts: Counter[tuple[int, str]] = Counter()
        now = _now()
        for status, share in STATUSES:
            n = int(DELIVERIES * share)
            counts[(message.id, status)] += n
            start = len(rows)
            phones = (f"+39333{start + i:07d}" for i in range(n))
            rows += [
                NewDelivery(message.id, "sms", "customer", start + i, phone, status, "", now, now)
                for i, phone in enumerate(phones)
            ]
        await insert_deliveries(session, rows)
        await add_to_counters(session, counts)
    async with sessions() as session:
        stored = (await session.execute(select(User).where(User.username == USERNAME))).scalar()
    assert stored is not None
    return broadcast_id, stored


class Stack:
    """The application with a dispatcher delivering Telegram at ``rate`` to the simulator."""

    def __init__(self, url: str, base_url: str, rate: float, attachments: Path) -> None:
        self.engine = create_engine(url, pool_size=20)
        self.sessions = create_session_factory(self.engine)
        endpoint = TelegramEndpoint(TOKEN, base_url, base_url.replace("/bot", "/file/bot"), True)
        settings = bench_settings(
            url, str(attachments), dispatch_batch_size=200, telegram_paid_broadcast=rate > 30
        )
        channels = build_channels(
            settings, telegram=endpoint, limiter=TelegramRateLimiter(rate), only=["telegram"]
        )
        registry = default_registry()
        self.dispatcher = build_dispatcher(settings, self.sessions, channels, _now)
        self.composer = build_composer(
            settings, self.sessions, _now, on_enqueued=self.dispatcher.wake
        )
        self.context = ApiContext(
            sessions=self.sessions,
            recipient_kinds=registry,
            composer=self.composer,
            cancel=self.dispatcher.cancel,
            max_request_bytes=10 * 1024 * 1024,
            max_attachment_bytes=1024 * 1024,
        )
        self.runner = web.AppRunner(create_app(self.context), access_log=None)
        self.port = 0

    async def start(self) -> None:
        await self.dispatcher.start()
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.dispatcher.stop()
        await self.engine.dispose()


# --- the client side (second process) -----------------------------------------------------------


async def _logged_in(base: str, connections: int) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )
    async with http.get(f"{base}/login") as response:
        page = await response.text()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"username": USERNAME, "password": PASSWORD, "csrf_token": token}
    async with http.post(f"{base}/login", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    return http


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    q = (
        statistics.quantiles(values, n=100)
        if len(values) > 1
        else [values[0] if values else 0] * 99
    )
    return {"p50": q[49] * 1000, "p99": q[98] * 1000, "max": (values[-1] if values else 0) * 1000}


async def _drive_pages(spec: dict[str, Any]) -> dict[str, Any]:
    base, bid = spec["base"], spec["broadcast_id"]
    http = await _logged_in(base, spec["concurrency"])
    rng = random.Random(7)
    latencies: dict[str, list[float]] = {"page": [], "table": []}
    statuses: Counter[int] = Counter()
    pages = DELIVERIES // 50
    deadline = time.perf_counter() + spec["warmup"] + spec["duration"]
    measure_from = time.perf_counter() + spec["warmup"]

    def target() -> tuple[str, str]:
        roll = rng.random()
        if roll < 0.4:
            return "page", f"{base}/broadcasts/{bid}"
        query = f"offset={rng.randrange(pages) * 50}"
        if roll < 0.55:
            query = f"status=failed&offset={rng.randrange(100) * 50}"
        elif roll < 0.6:
            query = f"q={rng.randrange(DELIVERIES):07d}"
        return "table", f"{base}/broadcasts/{bid}/deliveries?{query}"

    async def worker() -> None:
        while (started := time.perf_counter()) < deadline:
            kind, url = target()
            async with http.get(url) as response:
                await response.read()
            if started >= measure_from:
                latencies[kind].append(time.perf_counter() - started)
                statuses[response.status] += 1

    try:
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    finally:
        await http.close()
    return {
        "requests": sum(len(v) for v in latencies.values()),
        "rps": sum(len(v) for v in latencies.values()) / spec["duration"],
        "page": _percentiles(latencies["page"]),
        "table": _percentiles(latencies["table"]),
        "statuses": dict(statuses),
    }


async def _watch(spec: dict[str, Any]) -> dict[str, Any]:
    """``watchers`` SSE clients of one broadcast page until it is final."""
    base, bid, count = spec["base"], spec["broadcast_id"], spec["watchers"]
    http = await _logged_in(base, count + 10)
    ages: list[float] = []  # how old the held counters were when the next update arrived
    latencies: list[float] = []  # from the server reading the counters to the client having them
    events = 0
    connected = 0
    ready = asyncio.Event()

    async def watcher() -> None:
        nonlocal events, connected
        async with http.get(
            f"{base}/broadcasts/{bid}/events", headers={"Accept": "text/event-stream"}
        ) as response:
            connected += 1
            if connected == count:
                ready.set()
            previous_at: float | None = None
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith('data: {"at"'):
                    continue
                received = time.time()
                data = json.loads(line.removeprefix("data: "))
                events += 1
                latencies.append(received - data["at"])
                if previous_at is not None:
                    ages.append(received - previous_at)
                previous_at = data["at"]
                if data["final"]:
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(count)]
    await asyncio.wait_for(ready.wait(), 30)
    sys.stdout.write("CONNECTED\n")
    sys.stdout.flush()
    try:
        await asyncio.gather(*tasks)
    finally:
        await http.close()
    return {
        "watchers": count,
        "events": events,
        "age": _percentiles(ages),
        "latency": _percentiles(latencies),
    }


# --- the server side (this process) ---------------------------------------------------------


async def _subprocess(mode: str, spec: dict[str, Any]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.console",
        mode,
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
    )


async def _final(sessions: SessionFactory, message_id: int) -> int:
    async with sessions() as session:
        counters = (await read_counters(session, [message_id]))[message_id]
    return sum(v for k, v in counters.items() if k not in ("pending", "sending"))


async def _timed_broadcast(
    stack: Stack, user: User, ids: list[int], watchers: int
) -> tuple[float, dict[str, Any] | None]:
    """Deliveries per second once steady (after the watchers are connected, if any)."""
    answer = await stack.composer.send(
        user,
        ComposeRequest(channels=["telegram"], body="Live benchmark", recipients={"customer": ids}),
    )
    message_id = answer.messages[0].id
    watch: asyncio.subprocess.Process | None = None
    if watchers:
        spec = {
            "base": f"http://127.0.0.1:{stack.port}",
            "broadcast_id": answer.broadcast_id,
            "watchers": watchers,
        }
        watch = await _subprocess("--watch", spec)
        assert watch.stdout is not None
        line = await watch.stdout.readline()
        assert line.strip() == b"CONNECTED", line
    else:
        await asyncio.sleep(2.0)  # the same head start the watchers take to connect
    done_at_start = await _final(stack.sessions, message_id)
    started = time.perf_counter()
    while (done := await _final(stack.sessions, message_id)) < len(ids):  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # progress polling in a benchmark, not a test
    rate = (done - done_at_start) / (time.perf_counter() - started)
    report = None
    if watch is not None:
        out, _ = await watch.communicate()
        report = json.loads(out.decode().splitlines()[-1])
    return rate, report


async def main(args: argparse.Namespace) -> None:
    recipients = int(args.rate * args.live_seconds)
    with (
        simulator_process("telegram", "--users", f"{FIRST_CHAT}:{recipients}") as base_url,
        TemporaryDirectory() as tmp,
    ):
        async with throwaway_postgres() as url:
            engine = create_engine(url)
            print(f"seeding {DELIVERIES:,} deliveries and {recipients:,} linked customers ...")
            broadcast_id, user = await _seed(create_session_factory(engine), recipients)
            async with create_session_factory(engine)() as session:
                ids = list((await session.execute(select(Customer.id))).scalars())
            await engine.dispose()
            stack = Stack(url, base_url, args.rate, Path(tmp))
            await stack.start()
            try:
                pages = await _subprocess(
                    "--load",
                    {
                        "base": f"http://127.0.0.1:{stack.port}",
                        "broadcast_id": broadcast_id,
                        "concurrency": args.concurrency,
                        "duration": args.duration,
                        "warmup": 1.0,
                    },
                )
                out, _ = await pages.communicate()
                load = json.loads(out)
                alone, _ = await _timed_broadcast(stack, user, ids, 0)
                watched, report = await _timed_broadcast(stack, user, ids, args.watchers)
            finally:
                await stack.stop()
    print(f"\npages of a {DELIVERIES:,}-delivery broadcast, {args.concurrency} clients:")
    print(f"  {load['rps']:.0f} req/s; statuses {load['statuses']}")
    for kind, name in (("page", "broadcast page"), ("table", "deliveries table")):
        r = load[kind]
        print(f"  {name:18} p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms")
    worst = max(load["page"]["p99"], load["table"]["p99"])
    print(f"  target p99 <= 100 ms: {'met' if worst <= 100 else 'NOT met'}")
    assert report is not None
    print(f"\nlive broadcast at {args.rate:.0f}/s, {recipients:,} deliveries:")
    print(f"  unwatched {alone:.1f}/s; with {report['watchers']} SSE watchers {watched:.1f}/s")
    ratio = watched / alone if alone else 0.0
    print(f"  ratio {ratio:.3f} (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    age, latency = report["age"], report["latency"]
    print(
        f"  {report['events']:,} updates; counters' age when the next arrived: p50 "
        f"{age['p50']:.0f} ms, p99 {age['p99']:.0f} ms, max {age['max']:.0f} ms "
        f"(target <= 1000 ms: {'met' if age['max'] <= 1000 else 'NOT met'})"
    )
    print(f"  read-to-client latency p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--watch", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.load:
        print(json.dumps(event_loop.run(_drive_pages(json.loads(parsed.load)))))
    elif parsed.watch:
        print(json.dumps(event_loop.run(_watch(json.loads(parsed.watch)))))
    else:
        event_loop.run(main(parsed))
