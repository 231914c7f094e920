"""Broadcast throughput and Telegram rate-limit fidelity, end to end on PostgreSQL.

1. 10,000 Telegram deliveries through composer → outbox → dispatcher → the Bot API simulator
   (its own process), limiter at the paid-broadcast 1000/s; compared with a plain aiohttp loop
   sending the same 10,000 requests at the same concurrency with no database.
2. Fidelity: the default 30/s for 20 s, sent as 20 broadcasts to the same 30 chats so every
   second the per-chat limit binds as well; the simulator's own view of the rate and of the
   gaps within a chat.

Run: ``.venv/bin/python bench/broadcast.py [--deliveries N] [--fidelity-seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from tempfile import TemporaryDirectory

import aiohttp
from sqlalchemy import insert

from bench._common import bench_settings, simulator_process, throwaway_postgres
from bot import event_loop
from bot.context import TelegramEndpoint
from bot.delivery import build_channels, build_composer, build_dispatcher
from channels.composer import Composer
from channels.composition import ComposeRequest
from channels.telegram_rate_limit import TelegramRateLimiter
from persistence.database import SessionFactory, create_engine, create_session_factory
from persistence.models import Customer, User
from persistence.outbox import read_counters

TOKEN = "123456:SANDBOX-TOKEN"
FIRST_CHAT = 1_000_000
CONCURRENCY = 64


async def _seed(url: str, count: int) -> tuple[list[int], User]:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        user = User(username="bench", is_superuser=True)
        session.add(user)
        await session.execute(
            insert(Customer),
            [{"name": f"C{i}", "telegram_chat_id": FIRST_CHAT + i} for i in range(count)],
        )
    async with sessions() as session:
        ids = list(
            (
                await session.execute(Customer.__table__.select().with_only_columns(Customer.id))
            ).scalars()
        )
    await engine.dispose()
    return ids, user


async def _broadcast(
    url: str,
    base_url: str,
    ids: list[int],
    user: User,
    rate: float,
    per_chat: float,
    messages: int = 1,
) -> tuple[float, dict[str, int], float]:
    engine = create_engine(url, pool_size=10)
    sessions = create_session_factory(engine)
    limiter = TelegramRateLimiter(rate, per_chat_interval=per_chat)
    endpoint = TelegramEndpoint(TOKEN, base_url, base_url.replace("/bot", "/file/bot"), True)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    with TemporaryDirectory() as tmp:
        settings = bench_settings(
            url,
            tmp,
            dispatch_batch_size=500,
            dispatch_concurrency=CONCURRENCY,
            telegram_paid_broadcast=rate > 30,
        )
        channels = build_channels(settings, telegram=endpoint, limiter=limiter, only=["telegram"])
        dispatcher = build_dispatcher(settings, sessions, channels, clock)
        composer = build_composer(settings, sessions, clock, on_enqueued=dispatcher.wake)
        await dispatcher.start()  # already running in the service, waiting for work
        # A running service has compiled its statements and opened its connections long before:
        # one small broadcast first, then a second for the limiter's window to empty again.
        await _send_and_wait(composer, sessions, user, ids[:20])
        await asyncio.sleep(1.1)
        await _reset(base_url)
        started = time.perf_counter()
        counters, enqueued = await _send_and_wait(composer, sessions, user, ids, messages)
        elapsed = time.perf_counter() - started
        await dispatcher.stop()
    await engine.dispose()
    return elapsed, counters, enqueued


async def _send_and_wait(
    composer: Composer, sessions: SessionFactory, user: User, ids: list[int], messages: int = 1
) -> tuple[dict[str, int], float]:
    """Send ``messages`` broadcasts to ``ids`` and wait until every delivery is final; the
    summed counters and the time the enqueue took."""
    started = time.perf_counter()
    message_ids = []
    for number in range(messages):
        answer = await composer.send(
            user,
            ComposeRequest(
                channels=["telegram"],
                body=f"Benchmark broadcast {number + 1}",
                recipients={"customer": ids},
            ),
        )
        message_ids.append(answer.messages[0].id)
    enqueued = time.perf_counter() - started
    while True:
        async with sessions() as session:
            per_message = await read_counters(session, message_ids)
        counters: dict[str, int] = {}
        for message_counters in per_message.values():
            for status, count in message_counters.items():
                counters[status] = counters.get(status, 0) + count
        if not counters.get("pending") and not counters.get("sending"):
            return counters, enqueued
        await asyncio.sleep(0.02)  # progress polling in a benchmark, not a test


async def _plain_aiohttp(base_url: str, count: int) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(FIRST_CHAT + i)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while not queue.empty():
                chat = queue.get_nowait()
                async with http.post(
                    f"{base_url}{TOKEN}/sendMessage",
                    json={"chat_id": chat, "text": "Benchmark broadcast"},
                ) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def _sim_stats(base_url: str) -> dict[str, object]:
    control = base_url.removesuffix("/bot") + "/_sim"
    async with aiohttp.ClientSession() as http, http.get(f"{control}/stats") as response:
        return (await response.json())["stats"]  # type: ignore[no-any-return]


async def _reset(base_url: str) -> None:
    control = base_url.removesuffix("/bot") + "/_sim"
    async with aiohttp.ClientSession() as http, http.post(f"{control}/reset") as response:
        await response.read()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--fidelity-seconds", type=float, default=20.0)
    args = parser.parse_args()
    n = args.deliveries
    fidelity_n = int(30 * args.fidelity_seconds)
    with simulator_process("telegram", "--users", f"{FIRST_CHAT}:{max(n, fidelity_n)}") as base_url:
        async with throwaway_postgres() as url:
            ids, user = await _seed(url, max(n, fidelity_n))
            await _reset(base_url)
            elapsed, counters, enqueued = await _broadcast(
                url, base_url, ids[:n], user, 1000.0, 1.0
            )
            seen = await _sim_stats(base_url)
            herald_rate = n / elapsed
            plain = await _plain_aiohttp(base_url, n)
            plain_rate = n / plain
            print(f"broadcast: {n} deliveries in {elapsed:.2f}s = {herald_rate:,.0f}/s")
            print(f"  (enqueue {enqueued:.2f}s; final counters {counters})")
            span = float(seen["send_span_seconds"])  # type: ignore[arg-type]
            print(
                f"  Telegram saw them from first to last over {span:.2f}s;"
                f" most in any 1 s window: {seen['max_per_second']}"
            )
            print(f"plain aiohttp loop, no database: {n} in {plain:.2f}s = {plain_rate:,.0f}/s")
            print(f"ratio herald/plain: {herald_rate / plain_rate:.2f}")
            elapsed, counters, _ = await _broadcast(url, base_url, ids[:n], user, 1e6, 0.0)
            lifted = n / elapsed
            print(f"same broadcast with the Telegram limit lifted: {lifted:,.0f}/s")
            print(f"  (what the pipeline itself can do; ratio to plain {lifted / plain_rate:.2f})")

            await _reset(base_url)
            elapsed, counters, _ = await _broadcast(
                url, base_url, ids[:30], user, 30.0, 1.0, messages=max(1, fidelity_n // 30)
            )
            stats = await _sim_stats(base_url)
            rate = fidelity_n / elapsed
            print(
                f"fidelity at 30/s: {fidelity_n} deliveries (to 30 chats) in {elapsed:.1f}s"
                f" = {rate:.2f}/s; final counters {counters}"
            )
            print(f"  most in any 1 s window at the simulator: {stats['max_per_second']}")
            gap = stats["min_same_chat_interval"]
            shown = f"{gap:.4f}s" if isinstance(gap, float) else "none"
            print(f"  shortest gap between two messages to one chat: {shown}")


if __name__ == "__main__":
    event_loop.run(main())
