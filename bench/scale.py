"""Several Herald processes on one PostgreSQL: throughput per process count, one Telegram budget.

For 1, 2 and 3 ``herald run`` processes (real processes, role ``all``):

1. a 10,000-recipient email broadcast to an SMTP sink (its own process) that takes 20 ms per
   message: deliveries per second, and the ratio to one process (email is latency-bound, so
   more processes deliver more);
2. a 10,000-recipient Telegram broadcast with the paid budget of 1,000/s: deliveries per second
   end to end, and the busiest second Telegram (the simulator) saw, which must never exceed the
   budget whatever the number of processes;
3. with 2 and 3 processes, the failover gap: the Telegram leader is killed (``kill -9``)
   mid-broadcast: the time until the new leader's first send (target: the leadership TTL + 3 s),
   and the longest silence, which includes the wait for the dead leader's in-hand batches, sent
   again once their lease expires.

The broadcasts are composed in this process, as any process's API would; the simulator runs
here too (this process only waits meanwhile). Run: ``.venv/bin/python -m bench.scale``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
from sqlalchemy import func, insert, select

from bench._common import bench_settings, smtp_sink, throwaway_postgres
from bot import event_loop
from bot.delivery import build_composer
from channels.composition import ComposeRequest
from persistence.database import SessionFactory, create_engine, create_session_factory
from persistence.models import Customer, MessageRecipient, User
from sandbox.telegram_simulator import TelegramSimulator

FIRST_CHAT = 2_000_000
TTL = 10.0
LEASE = 60.0  # the dispatcher's default delivery lease
LISTENING = re.compile(r"Herald is listening on http://[^:]+:(\d+)")


class Herald:
    """One ``herald run`` process, configured through its environment."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=self.workdir,
            env={**os.environ, **self.env},
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready))
        self.port = await asyncio.wait_for(ready, 60)

    async def _read(self, ready: asyncio.Future[int]) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:  # drained to the end: the pipe never fills
            match = LISTENING.search(raw.decode(errors="replace"))
            if match and not ready.done():
                ready.set_result(int(match.group(1)))
        if not ready.done():
            ready.set_exception(RuntimeError("herald run exited before listening"))

    async def leads(self) -> list[str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}/readyz") as response,
        ):
            leads: list[str] = (await response.json()).get("leads", [])
            return leads

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader


async def _seed(sessions: SessionFactory, count: int) -> tuple[list[int], User]:
    async with sessions.begin() as session:
        user = User(username="bench", is_superuser=True)
        session.add(user)
        await session.execute(
            insert(Customer),
            [
                {"name": f"C{i}", "telegram_chat_id": FIRST_CHAT + i, "email": f"c{i}@example.org"}
                for i in range(count)
            ],
        )
    async with sessions() as session:
        ids = list((await session.execute(select(Customer.id).order_by(Customer.id))).scalars())
    return ids, user


async def _delivered(sessions: SessionFactory, message_id: int) -> int:
    async with sessions() as session:
        done = await session.scalar(
            select(func.count()).where(
                MessageRecipient.message_id == message_id,
                MessageRecipient.status.not_in(["pending", "sending"]),
            )
        )
    return int(done or 0)


async def _broadcast(
    url: str, sessions: SessionFactory, user: User, ids: list[int], channel: str, tmp: str
) -> tuple[int, float]:
    composer = build_composer(bench_settings(url, tmp), sessions, lambda: datetime.now(UTC))
    request = ComposeRequest(
        channels=[channel],
        subject="Notice",
        body="The office is closed on Friday.",
        recipients={"customer": ids},
    )
    started = time.perf_counter()
    message_id = (await composer.send(user, request)).messages[0].id
    return message_id, started


async def _wait_done(sessions: SessionFactory, message_id: int, total: int) -> None:
    async with asyncio.timeout(600):
        while await _delivered(sessions, message_id) < total:  # noqa: ASYNC110 - a database state
            await asyncio.sleep(0.1)  # polling the database: no event to wait on


async def _telegram_leader(processes: list[Herald]) -> Herald:
    for process in processes:
        if any(name.startswith("telegram:") for name in await process.leads()):
            return process
    raise RuntimeError("no process leads Telegram")


def _longest_gap(stamps: list[float], after: float) -> float:
    later = sorted(s for s in stamps if s >= after)
    gaps = [b - a for a, b in itertools.pairwise(later)]
    return max(gaps, default=0.0)


async def _run(count: int, recipients: int, smtp_port: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with throwaway_postgres() as url, TelegramSimulator() as sim:
        for i in range(recipients):
            sim.add_user(FIRST_CHAT + i, f"C{i}")
        engine = create_engine(url)
        sessions = create_session_factory(engine)
        ids, user = await _seed(sessions, recipients)
        with TemporaryDirectory() as tmp:
            env = {
                "DATABASE_URL": url,
                "TELEGRAM_BOT_TOKEN": sim.token,
                "TELEGRAM_API_BASE_URL": sim.base_url,
                "TELEGRAM_API_FILE_URL": sim.base_file_url,
                "TELEGRAM_PAID_BROADCAST": "true",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(smtp_port),
                "SMTP_STARTTLS": "false",
                "PORT": "0",
                "LOG_LEVEL": "INFO",  # "Herald is listening" says it is up
                "DISPATCH_BATCH_SIZE": "500",
                "LEADERSHIP_TTL_SECONDS": str(TTL),
            }
            processes = [Herald(Path(tmp) / f"p{i}", env) for i in range(count)]
            try:
                for process in processes:
                    await process.start()
                message_id, started = await _broadcast(url, sessions, user, ids, "email", tmp)
                await _wait_done(sessions, message_id, recipients)
                results["email_per_second"] = recipients / (time.perf_counter() - started)

                sim.reset_counters()
                message_id, started = await _broadcast(url, sessions, user, ids, "telegram", tmp)
                await _wait_done(sessions, message_id, recipients)
                results["telegram_per_second"] = recipients / (time.perf_counter() - started)
                results["telegram_busiest_second"] = sim.max_per_window(1.0)

                if count > 1:
                    sim.reset_counters()
                    message_id, _ = await _broadcast(url, sessions, user, ids, "telegram", tmp)
                    await sim.wait_for_sends(recipients // 5, timeout=120)
                    leader = await _telegram_leader(processes)
                    killed_at = time.monotonic()
                    await leader.kill()
                    await _wait_done(sessions, message_id, recipients)
                    stamps = [stamp for stamp, _, _ in sim.sends]
                    resumed = min(stamp for stamp in stamps if stamp >= killed_at)
                    results["failover_gap_seconds"] = resumed - killed_at
                    # The batches the dead leader had in hand wait for their lease to expire
                    # (it cannot be told from a leader cut off from the database, which may
                    # still record them): the longest silence, that wait included.
                    results["longest_silence_seconds"] = _longest_gap(stamps, killed_at - 1)
                    results["done_after_kill_seconds"] = time.monotonic() - killed_at
                    results["failover_busiest_second"] = sim.max_per_window(1.0)
            finally:
                for process in processes:
                    await process.kill()
        await engine.dispose()
    return results


async def main(args: argparse.Namespace) -> None:
    with smtp_sink(latency=args.smtp_latency) as sink:
        table: dict[int, dict[str, float]] = {}
        for count in args.processes:
            table[count] = await _run(count, args.recipients, sink.port)
            print(f"{count} process(es): {table[count]}", flush=True)
    one = table[args.processes[0]]
    print()
    print(
        f"{'processes':>9} {'email/s':>9} {'ratio':>6} {'telegram/s':>11} {'busiest s':>10}"
        f" {'failover gap':>13} {'longest silence':>16} {'done after kill':>16}"
    )
    for count, row in table.items():
        ratio = row["email_per_second"] / one["email_per_second"]
        gaps = [
            f"{row[key]:.1f} s" if key in row else "-"
            for key in (
                "failover_gap_seconds",
                "longest_silence_seconds",
                "done_after_kill_seconds",
            )
        ]
        print(
            f"{count:>9} {row['email_per_second']:>9.0f} {ratio:>6.2f}"
            f" {row['telegram_per_second']:>11.0f} {row['telegram_busiest_second']:>10.0f}"
            f" {gaps[0]:>13} {gaps[1]:>16} {gaps[2]:>16}"
        )
    print(
        f"(budget 1,000/s; failover gap: from the kill to the new leader's first send, target TTL"
        f" + 3 s = {TTL + 3:g} s; the dead leader's batches in hand wait for their"
        f" {LEASE:g} s lease)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--smtp-latency", type=float, default=0.02)
    event_loop.run(main(parser.parse_args()))
