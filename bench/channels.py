"""Email and SMS throughput through the whole pipeline (composer, outbox, dispatcher) on PostgreSQL.

1. 10,000 emails to a local aiosmtpd server (its own process): deliveries/s and SMTP connections
   opened (reused from a pool of ``--smtp-pool``).
2. 100,000 SMS recipients to the Skebby simulator (its own process): deliveries/s and the number
   of ``POST sms`` orders (batches of ``--sms-batch``, all full but the last).

Run: ``.venv/bin/python -m bench.channels [--emails N] [--sms N] [--sms-batch N]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from tempfile import TemporaryDirectory

from sqlalchemy import insert, select

from bench._common import bench_settings, simulator_process, smtp_sink, throwaway_postgres
from bot import event_loop
from bot.delivery import build_composer, build_dispatcher
from channels.base import Channel
from channels.composer import Composer
from channels.composition import ComposeRequest
from channels.dispatcher import Dispatcher
from channels.skebby_channel import SkebbyChannel
from channels.skebby_gateway import SkebbyGateway
from channels.smtp_channel import EmailChannel, SmtpConfig
from persistence.database import SessionFactory, create_engine, create_session_factory
from persistence.models import Customer, User
from persistence.outbox import read_counters

FIRST_MOBILE = 3_470_000_000


@dataclass
class Result:
    channel: str
    deliveries: int
    enqueue_s: float
    deliver_s: float
    counters: dict[str, int]

    @property
    def rate(self) -> float:
        return self.deliveries / self.deliver_s


async def _seed(
    sessions: SessionFactory, emails: int, mobiles: int
) -> tuple[User, list[int], list[int]]:
    async with sessions.begin() as session:
        user = User(username="bench", is_superuser=True)
        session.add(user)
        rows = [{"name": f"E{i}", "email": f"person{i}@example.org"} for i in range(emails)]
        rows += [{"name": f"S{i}", "sms": f"+39{FIRST_MOBILE + i}"} for i in range(mobiles)]
        for start in range(0, len(rows), 5000):
            await session.execute(insert(Customer), rows[start : start + 5000])
    async with sessions() as session:
        email_ids = list(
            (
                await session.execute(select(Customer.id).where(Customer.email.is_not(None)))
            ).scalars()
        )
        sms_ids = list(
            (await session.execute(select(Customer.id).where(Customer.sms.is_not(None)))).scalars()
        )
    return user, email_ids, sms_ids


async def _deliver(
    sessions: SessionFactory,
    composer: Composer,
    dispatcher: Dispatcher,
    user: User,
    channel: str,
    ids: list[int],
) -> Result:
    request = ComposeRequest(
        channels=[channel],
        subject="Benchmark",
        body="Gentile cliente, l'ufficio resterà chiuso venerdì. Grazie, Herald",
        recipients={"customer": ids},
    )
    started = time.perf_counter()
    answer = await composer.send(user, request)
    enqueued = time.perf_counter()
    message_id = answer.messages[0].id
    while True:
        async with sessions() as session:
            counters = (await read_counters(session, [message_id]))[message_id]
        if not counters.get("pending") and not counters.get("sending"):
            break
        await asyncio.sleep(0.1)  # progress polling in a benchmark, not a test
    done = time.perf_counter()
    return Result(channel, len(ids), enqueued - started, done - enqueued, counters)


async def _run(args: argparse.Namespace, skebby_url: str, smtp_port: int) -> None:
    async with throwaway_postgres() as url:
        engine = create_engine(url, pool_size=10)
        sessions = create_session_factory(engine)
        user, email_ids, sms_ids = await _seed(sessions, args.emails, args.sms)
        email = EmailChannel(
            SmtpConfig(
                host="127.0.0.1",
                port=smtp_port,
                username=None,
                password=None,
                starttls=False,
                ssl=False,
                timeout=30,
                sender="Herald <herald@example.org>",
                connection_pool_size=args.smtp_pool,
                messages_per_connection=args.emails,
            )
        )
        gateway = SkebbyGateway(skebby_url, "sandbox", "sandbox", timeout=60)
        sms = SkebbyChannel(
            gateway,
            message_type="GP",
            sender="Herald",
            max_fragments=7,
            truncate=False,
            batch_size=args.sms_batch,
        )
        channels: dict[str, Channel] = {"email": email, "sms": sms}
        clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
        with TemporaryDirectory() as tmp:
            settings = bench_settings(
                url, tmp, dispatch_batch_size=args.claim, dispatch_lease_seconds=300
            )
            dispatcher = build_dispatcher(settings, sessions, channels, clock)
            composer = build_composer(settings, sessions, clock, on_enqueued=dispatcher.wake)
            await dispatcher.start()
            try:
                results = [
                    await _deliver(sessions, composer, dispatcher, user, "email", email_ids),
                    await _deliver(sessions, composer, dispatcher, user, "sms", sms_ids),
                ]
                history = await gateway.sms_history(
                    datetime.now(UTC) - timedelta(hours=1), page_size=1
                )
            finally:
                await dispatcher.stop()  # closes the channels (SMTP QUIT, Skebby session)
        await engine.dispose()
    for r in results:
        print(
            f"{r.channel:5}: {r.deliveries:,} deliveries in {r.deliver_s:.2f}s = {r.rate:,.0f}/s "
            f"(enqueue {r.enqueue_s:.2f}s) {r.counters}"
        )
    print(
        f"email: {email.connections_opened} SMTP connections opened "
        f"(pool {args.smtp_pool}) for {args.emails:,} emails"
    )
    full = args.sms // args.sms_batch
    print(
        f"sms:   {sms.orders_sent} POST sms accepted (Skebby's history: {history.get('total')} "
        f"orders) for {args.sms:,} recipients, batch {args.sms_batch}: "
        f"{full} full batch(es){' + 1 partial' if args.sms % args.sms_batch else ''} expected"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--sms", type=int, default=100_000)
    parser.add_argument("--sms-batch", type=int, default=1000)
    parser.add_argument("--smtp-pool", type=int, default=4)
    parser.add_argument("--claim", type=int, default=2000, help="deliveries per dispatcher claim")
    args = parser.parse_args()
    with smtp_sink() as sink, simulator_process("skebby") as skebby_url:
        await _run(args, skebby_url, sink.port)
    print(f"smtp server (its own process) accepted {sink.received:,} messages")


if __name__ == "__main__":
    event_loop.run(main())
