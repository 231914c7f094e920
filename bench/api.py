"""Admin API under load, on PostgreSQL: the status read of a 100,000-delivery message and a
1,000-recipient presend.

This process seeds a throwaway database and serves the real admin API (``create_app``) on
loopback; a SECOND process (this module with ``--load``) drives it with a small aiohttp load
generator and reports requests/s and latency percentiles. The two share the machine's CPUs.

Run: ``.venv/bin/python -m bench.api [--duration S] [--concurrency N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
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
from admin_api.key_cache import KeyCache
from bench._common import bench_settings, throwaway_postgres
from bot import event_loop
from bot.delivery import build_composer
from bot.runner import KEY_CACHE_SECONDS
from persistence.api_keys import issue_api_key
from persistence.audit import Actor
from persistence.database import create_engine, create_session_factory
from persistence.enqueue import NewDelivery, insert_deliveries
from persistence.models import Customer, Message
from persistence.notify import API_KEYS_CHANNEL, NotificationListener, asyncpg_dsn
from persistence.outbox import add_to_counters
from persistence.recipient_kinds import default_registry

DELIVERIES = 100_000
PRESEND_RECIPIENTS = 1_000
STATUSES = (("success", 0.6), ("pending", 0.3), ("failed", 0.1))


def _now() -> datetime:
    return datetime.now(UTC)


async def _seed(url: str) -> tuple[str, int, list[int]]:
    """An API key, a message with 100,000 deliveries (COPY), and 1,000 customers."""
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        key = (await issue_api_key(session, "bench", superuser=True)).key
        await session.execute(
            insert(Customer),
            [
                {"name": f"C{i}", "sms": f"+39333{i:07d}", "email": f"c{i}@example.org"}
                for i in range(PRESEND_RECIPIENTS)
            ],
        )
        message = Message(
            broadcast_id="bench", channel="telegram", body="Benchmark", total=DELIVERIES
        )
        session.add(message)
        await session.flush()
        rows: list[NewDelivery] = []
        counts: Counter[tuple[int, str]] = Counter()
        now = _now()
        for status, share in STATUSES:
            n = int(DELIVERIES * share)
            counts[(message.id, status)] += n
            rows += [
                NewDelivery(
                    message.id, "telegram", "customer", i, str(1_000_000 + i), status, "", now, now
                )
                for i in range(n)
            ]
        await insert_deliveries(session, rows)
        await add_to_counters(session, counts)
        message_id = message.id
    async with sessions() as session:
        ids = list((await session.execute(select(Customer.id).order_by(Customer.id))).scalars())
    await engine.dispose()
    return key, message_id, ids


async def _serve(
    url: str, attachments: Path
) -> tuple[web.AppRunner, int, Any, NotificationListener]:
    engine = create_engine(url, pool_size=20)
    # As the service does on PostgreSQL: verified keys are remembered while revocations are
    # heard, so a busy client costs no key lookup per request.
    key_cache = KeyCache(ttl=KEY_CACHE_SECONDS)
    listener = NotificationListener(
        asyncpg_dsn(url),
        {API_KEYS_CHANNEL: key_cache.on_notification},
        on_state=key_cache.set_listening,
    )
    await listener.start()
    sessions = create_session_factory(engine)
    registry = default_registry()
    composer = build_composer(bench_settings(url, str(attachments.parent)), sessions, _now)

    async def cancel(_message_id: int, _actor: Actor) -> int:
        return 0

    context = ApiContext(
        sessions=sessions,
        recipient_kinds=registry,
        composer=composer,
        cancel=cancel,
        max_request_bytes=10 * 1024 * 1024,
        max_attachment_bytes=1024 * 1024,
        key_cache=key_cache,
    )
    runner = web.AppRunner(create_app(context), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1]), engine, listener


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator (runs in the second process)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {spec['key']}"}
    body = json.dumps(spec["body"]).encode() if spec.get("body") is not None else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    deadline = time.perf_counter() + spec["warmup"] + spec["duration"]
    measure_from = time.perf_counter() + spec["warmup"]
    connector = aiohttp.TCPConnector(limit=spec["concurrency"])
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while (started := time.perf_counter()) < deadline:
                async with http.request(
                    spec["method"], spec["url"], data=body, headers=headers
                ) as response:
                    await response.read()
                if started >= measure_from:
                    latencies.append(time.perf_counter() - started)
                    statuses[response.status] += 1

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "rps": len(latencies) / spec["duration"],
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "statuses": dict(statuses),
    }


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    cpu = time.process_time()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.api",
        "--load",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    result: dict[str, Any] = json.loads(out)
    # The server's CPU over warm-up and measurement, per request served in that time.
    served = result["requests"] * (spec["warmup"] + spec["duration"]) / spec["duration"]
    result["server_cpu_ms"] = (time.process_time() - cpu) * 1000 / max(1.0, served)
    return result


async def main(duration: float, concurrency: int) -> None:
    async with throwaway_postgres() as url:
        print(f"seeding {DELIVERIES:,} deliveries and {PRESEND_RECIPIENTS:,} customers ...")
        key, message_id, ids = await _seed(url)
        with TemporaryDirectory() as tmp:
            runner, port, engine, listener = await _serve(url, Path(tmp))
            base = f"http://127.0.0.1:{port}/api/v1"
            common = {"key": key, "duration": duration, "warmup": 1.0}
            status = await _load(
                {
                    **common,
                    "method": "GET",
                    "url": f"{base}/messages/{message_id}",
                    "concurrency": concurrency,
                }
            )
            presend = await _load(
                {
                    **common,
                    "method": "POST",
                    "url": f"{base}/messages?presend=true",
                    "concurrency": max(1, concurrency // 4),
                    "body": {
                        "channels": ["sms", "email"],
                        "body": "Benchmark presend",
                        "subject": "Bench",
                        "recipients": {"customer": ids},
                    },
                }
            )
            await runner.cleanup()
            await listener.stop()
            await engine.dispose()
    print(f"\n{'':34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms':>8}  statuses")
    for name, r in (
        (f"GET /messages/{{id}} ({DELIVERIES:,} dlv)", status),
        (f"POST /messages presend ({PRESEND_RECIPIENTS:,})", presend),
    ):
        print(
            f"{name:34}{r['rps']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}"
            f"{r['server_cpu_ms']:>8.2f}  {r['statuses']}"
        )
    ok = status["rps"] >= 1000 and status["p99_ms"] <= 50
    print(f"\nstatus read target (>= 1,000 req/s, p99 <= 50 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(event_loop.run(_drive(json.loads(args.load)))))
    else:
        event_loop.run(main(args.duration, args.concurrency))
