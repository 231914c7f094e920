"""Enqueue cost: presend + send of one broadcast to 100,000 recipients on PostgreSQL.

Prints the time to each answer, the peak Python memory of the send (tracemalloc) and the process
peak RSS, and the ratio to a raw asyncpg ``copy_records_to_table`` of the same 100,000 rows; then
the same broadcast personalised (``{{ name }}`` and ``{{ extra.contract_number }}``, every
recipient rendered and its values stored) beside the plain one, with the ratio (at most 1.5x).

Run: ``.venv/bin/python -m bench.enqueue [--recipients N]``
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from datetime import UTC, datetime
from tempfile import TemporaryDirectory

import asyncpg
from sqlalchemy import insert, select

from bench._common import bench_settings, throwaway_postgres
from bot import event_loop
from bot.delivery import build_composer
from channels.composition import ComposeRequest
from persistence.database import create_engine, create_session_factory
from persistence.enqueue import DELIVERY_COLUMNS, NewDelivery
from persistence.models import Customer, User


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    n = parser.parse_args().recipients
    async with throwaway_postgres() as url:
        engine = create_engine(url)
        sessions = create_session_factory(engine)
        async with sessions.begin() as session:
            user = User(username="bench", is_superuser=True)
            session.add(user)
            for start in range(0, n, 10_000):
                await session.execute(
                    insert(Customer),
                    [
                        {
                            "name": f"C{i}",
                            "telegram_chat_id": 1_000_000 + i,
                            "email": f"c{i}@example.com",
                            "extra": {"contract_number": f"K-{i:06d}"},
                        }
                        for i in range(start, min(n, start + 10_000))
                    ],
                )
        async with sessions() as session:
            ids = list((await session.execute(select(Customer.id).order_by(Customer.id))).scalars())
        with TemporaryDirectory() as tmp:
            composer = build_composer(bench_settings(url, tmp), sessions, lambda: datetime.now(UTC))
            request = ComposeRequest(
                channels=["telegram"], body="Benchmark", recipients={"customer": ids}
            )
            rss_before = _rss_mb()
            started = time.perf_counter()
            plan = await composer.presend(user, request)
            presend_seconds = time.perf_counter() - started
            started = time.perf_counter()
            answer = await composer.send(user, request)
            send_seconds = time.perf_counter() - started
            rss_after = _rss_mb()
            # A second, traced send (tracemalloc slows Python down, so it is not timed).
            tracemalloc.start()
            await composer.send(user, request)
            _, send_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            # Plain and personalised side by side, bodies of the same length.
            personal_body = "Dear {{ name }}, contract {{ extra.contract_number }} renews soon."
            plain_request = ComposeRequest(
                channels=["telegram"],
                body="Dear customer, your contract renews very soon, thanks.",
                recipients={"customer": ids},
            )
            personal_request = ComposeRequest(
                channels=["telegram"], body=personal_body, recipients={"customer": ids}
            )
            side: dict[str, tuple[float, float]] = {}
            for label, compose in (("plain", plain_request), ("personalised", personal_request)):
                started = time.perf_counter()
                checked = await composer.presend(user, compose)
                middle = time.perf_counter()
                sent = await composer.send(user, compose)
                side[label] = (middle - started, time.perf_counter() - middle)
                assert checked.channels[0].to_json()["valid"] == n
                assert sent.messages[0].counts["pending"] == n
        assert plan.channels[0].to_json()["valid"] == n
        assert answer.messages[0].counts["pending"] == n
        message_id = answer.messages[0].id
        await engine.dispose()

        raw = await asyncpg.connect(url.replace("+asyncpg", ""))
        now = datetime.now(UTC)
        rows = [
            NewDelivery(
                message_id, "telegram", "customer", i, str(1_000_000 + i), "pending", "", now, now
            )
            for i in ids
        ]
        started = time.perf_counter()
        await raw.copy_records_to_table(
            "message_recipients",
            records=rows,
            columns=list(DELIVERY_COLUMNS),
        )
        copy_seconds = time.perf_counter() - started
        await raw.close()

    print(f"presend to {n:,} recipients: {presend_seconds:.2f}s")
    print(f"send to {n:,} recipients: {send_seconds:.2f}s")
    print(f"presend + send: {presend_seconds + send_seconds:.2f}s")
    print(f"process peak RSS {rss_after:.0f} MB (was {rss_before:.0f} MB before the broadcast)")
    print(f"peak Python allocations during a send: {send_peak / 2**20:.0f} MB")
    print(f"raw asyncpg copy_records_to_table of the same rows: {copy_seconds:.2f}s")
    print(f"ratio send / raw copy: {send_seconds / copy_seconds:.1f}x")
    for label, (presend_s, send_s) in side.items():
        print(f"{label:>12} to {n:,}: presend {presend_s:.2f}s, send {send_s:.2f}s")
    (plain_p, plain_s), (personal_p, personal_s) = side["plain"], side["personalised"]
    print(
        f"personalised / plain: presend {personal_p / plain_p:.2f}x, "
        f"send {personal_s / plain_s:.2f}x (limit 1.5x)"
    )


if __name__ == "__main__":
    event_loop.run(main())
