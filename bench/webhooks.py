"""Delivery-status webhooks on PostgreSQL: how fast events go out, and what they cost the
Telegram broadcast.

1. 10,000 ``delivery.success`` events (from a real 10,000-recipient broadcast on the in-app
   channel) to a loopback receiver in its own process that takes 20 ms per request: events per
   second, from the sender's start to the last one delivered.
2. The 10,000-delivery Telegram broadcast of ``bench.broadcast`` at the 1,000/s budget, with
   webhooks off (no endpoint) and on (an endpoint wanting every delivery event, the sender
   posting them meanwhile), alternated: the rates side by side and their ratio (target ≤ 5 %
   slower).

Run: ``.venv/bin/python -m bench.webhooks [--events N] [--deliveries N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from tempfile import TemporaryDirectory

from aiohttp import web
from sqlalchemy import update

from bench._common import bench_settings, simulator_process, throwaway_postgres
from bench.broadcast import CONCURRENCY, FIRST_CHAT, TOKEN, _reset, _seed, _send_and_wait
from bot import event_loop
from bot.context import TelegramEndpoint
from bot.delivery import build_channels, build_composer, build_dispatcher, webhook_config
from channels.composition import ComposeRequest
from channels.telegram_rate_limit import TelegramRateLimiter
from channels.webhook_channel import WebhookSender
from channels.webhook_urls import UrlPolicy
from persistence import webhook_queries as sql
from persistence.database import create_engine, create_session_factory
from persistence.models import Customer, User, WebhookEndpoint

LATENCY = 0.020


def serve_receiver() -> None:
    """The receiver process: 20 ms per request, then 200; prints READY <url>."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(LATENCY)  # the receiver's own work
        return web.Response(text="ok")

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"READY http://127.0.0.1:{runner.addresses[0][1]}/hook", flush=True)
        await asyncio.Event().wait()

    event_loop.run(run())


@contextmanager
def receiver_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.webhooks", "--serve-receiver"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"receiver did not start: {line!r}")
        yield line.removeprefix("READY ")
    finally:
        process.terminate()
        process.wait(timeout=10)


def clock() -> datetime:
    return datetime.now(UTC)


async def _endpoint(url: str, owner: User, receiver: str) -> int:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        endpoint = await sql.create_endpoint(
            session,
            owner_id=owner.id,
            url=receiver,
            events=list(sql.EVENT_TYPES),
            secret="bench-secret-0123456789",
        )
        endpoint_id = endpoint.id
        await session.execute(
            update(Customer).values(owner_id=owner.id).execution_options(synchronize_session=False)
        )
    await engine.dispose()
    return endpoint_id


async def _set_active(url: str, endpoint_id: int, active: bool) -> None:
    engine = create_engine(url)
    async with create_session_factory(engine).begin() as session:
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(active=active)
        )
    await engine.dispose()


async def _event_rate(url: str, user: User, ids: list[int], per_endpoint: int) -> None:
    engine = create_engine(url, pool_size=10)
    sessions = create_session_factory(engine)
    with TemporaryDirectory() as tmp:
        settings = bench_settings(
            url, tmp, webhook_concurrency_per_endpoint=per_endpoint, webhook_concurrency=256
        )
        channels = build_channels(settings, telegram=None, only=["storage"])
        dispatcher = build_dispatcher(settings, sessions, channels, clock)
        composer = build_composer(settings, sessions, clock)
        started = time.perf_counter()
        await composer.send(
            user,
            ComposeRequest(
                channels=["storage"], body="Webhook bench", recipients={"customer": ids}
            ),
        )
        await dispatcher.drain()
        produced = time.perf_counter() - started
        await dispatcher.stop()
        async with sessions() as session:
            pending = (await sql.event_counts(session)).get("pending", 0)
        config = webhook_config(settings)
        sender = WebhookSender(
            sessions,
            replace(config, policy=UrlPolicy(allow_loopback=True)),
            clock,
            deliveries_busy=dispatcher.busy,
        )
        started = time.perf_counter()
        await sender.start()
        while True:
            async with sessions() as session:
                counts = await sql.event_counts(session)
            if not counts.get("pending") and not counts.get("sending"):
                break
            await asyncio.sleep(0.05)  # progress polling in a benchmark, not a test
        elapsed = time.perf_counter() - started
        await sender.stop()
    await engine.dispose()
    delivered = counts.get("delivered", 0)
    print(
        f"webhooks: {delivered} events (of {pending} written by a {len(ids)}-delivery broadcast "
        f"recorded in {produced:.2f} s) delivered in {elapsed:.2f} s = "
        f"{delivered / elapsed:,.0f} events/s to one endpoint taking {LATENCY * 1000:.0f} ms, "
        f"{per_endpoint} concurrent POSTs (ceiling {per_endpoint / LATENCY:,.0f}/s); "
        f"failed {counts.get('failed', 0)}"
    )


async def _telegram_rate(
    url: str, base_url: str, ids: list[int], user: User, *, webhooks: bool
) -> tuple[float, int]:
    engine = create_engine(url, pool_size=10)
    sessions = create_session_factory(engine)
    limiter = TelegramRateLimiter(1000.0, per_chat_interval=1.0)
    endpoint = TelegramEndpoint(TOKEN, base_url, base_url.replace("/bot", "/file/bot"), True)
    with TemporaryDirectory() as tmp:
        settings = bench_settings(
            url,
            tmp,
            dispatch_batch_size=500,
            dispatch_concurrency=CONCURRENCY,
            telegram_paid_broadcast=True,
            webhook_concurrency_per_endpoint=64,
        )
        channels = build_channels(settings, telegram=endpoint, limiter=limiter, only=["telegram"])
        dispatcher = build_dispatcher(settings, sessions, channels, clock)
        composer = build_composer(settings, sessions, clock, on_enqueued=dispatcher.wake)
        config = webhook_config(settings)
        sender = WebhookSender(
            sessions,
            replace(config, policy=UrlPolicy(allow_loopback=True)),
            clock,
            deliveries_busy=dispatcher.busy,  # as bot.delivery.build_webhook_sender wires it
        )
        await dispatcher.start()
        if webhooks:
            await sender.start()
        await _send_and_wait(composer, sessions, user, ids[:20])
        await asyncio.sleep(1.1)  # the limiter's window empties
        await _reset(base_url)
        started = time.perf_counter()
        await _send_and_wait(composer, sessions, user, ids)
        elapsed = time.perf_counter() - started
        await dispatcher.stop()
        await sender.stop()
        async with sessions() as session:
            events = sum((await sql.event_counts(session)).values())
    await engine.dispose()
    return len(ids) / elapsed, events


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-endpoint", type=int, default=64)
    args = parser.parse_args()
    n = max(args.events, args.deliveries)
    with (
        receiver_process() as receiver,
        simulator_process("telegram", "--users", f"{FIRST_CHAT}:{n}") as base_url,
    ):
        async with throwaway_postgres() as url:
            ids, user = await _seed(url, n)
            endpoint_id = await _endpoint(url, user, receiver)
            await _event_rate(url, user, ids[: args.events], args.per_endpoint)
            off: list[float] = []
            on: list[float] = []
            written = 0
            for _ in range(args.rounds):
                await _set_active(url, endpoint_id, False)
                rate, _ = await _telegram_rate(
                    url, base_url, ids[: args.deliveries], user, webhooks=False
                )
                off.append(rate)
                await _set_active(url, endpoint_id, True)
                before = written
                rate, written = await _telegram_rate(
                    url, base_url, ids[: args.deliveries], user, webhooks=True
                )
                on.append(rate)
                assert written - before >= args.deliveries, (before, written)
            print(
                f"telegram broadcast of {args.deliveries} at the 1,000/s budget: "
                f"webhooks off {', '.join(f'{r:,.0f}' for r in off)}/s; "
                f"on {', '.join(f'{r:,.0f}' for r in on)}/s "
                f"(each delivery an event, posted meanwhile)"
            )
            best_off, best_on = max(off), max(on)
            mean_off, mean_on = sum(off) / len(off), sum(on) / len(on)
            print(
                f"  ratio on/off: best {best_on / best_off:.3f}, mean {mean_on / mean_off:.3f}"
                f" (target ≥ 0.95)"
            )


if __name__ == "__main__":
    if "--serve-receiver" in sys.argv:
        serve_receiver()
    else:
        event_loop.run(main())
