"""Benchmark: text updates from linked people through the webhook route to the echo handler.

Starts the Telegram simulator (with the load driver, in a child process, as the real Telegram
is another machine), creates a throwaway PostgreSQL database (dropped at the end), links
N people, and POSTs 5,000 updates straight to the service's webhook route (with the secret, 50 at a
time). Each update passes the access gate, is stored as a received message and echoed back; the
run ends when the simulator has received every echo. The same run is made twice: with Herald's
database persistence for PTB's data, and with PTB's in-memory state only. Targets: >= 500
updates/s with database persistence, and >= 0.7 of the in-memory figure.

    .venv/bin/python bench/updates.py [--updates 5000] [--users 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import time
from pathlib import Path

import aiohttp
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import throwaway_postgres
from bot import event_loop
from bot.runner import BotPersistence, Service
from bot.settings import load_settings
from bot.webhook import SECRET_HEADER
from persistence.database import create_engine
from sandbox.telegram_simulator import TelegramSimulator

SECRET = "bench-webhook-secret"
BENCH_TOKEN = "777000:BENCH-TOKEN"
FIRST_USER = 100_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _reset_and_link(url: str, users: int) -> None:
    """Empty the data of a previous run and link ``users`` customers to chats."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "TRUNCATE messages, message_recipients, message_counters, customers, "
                    "bot_user_data, bot_chat_data, bot_conversations, bot_singletons, "
                    "telegram_updates "
                    "RESTART IDENTITY CASCADE"
                )
            )
            rows = [
                {"name": f"Person {i}", "sms": f"+3933300{i:05d}", "chat": FIRST_USER + i}
                for i in range(users)
            ]
            await conn.execute(
                text(
                    "INSERT INTO customers (name, sms, telegram_chat_id, telegram_opted_out, "
                    "telegram_blocked, note, extra, created_at, updated_at) VALUES "
                    "(:name, :sms, :chat, false, false, '', '{}', now(), now())"
                ),
                rows,
            )
    finally:
        await engine.dispose()


def _update(update_id: int, user_id: int) -> bytes:
    user = {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "en"}
    message = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
        "from": user,
        "text": f"bench message {update_id}",
    }
    return json.dumps({"update_id": update_id, "message": message}).encode()


async def _push(url: str, bodies: list[bytes], concurrency: int) -> None:
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with http.post(url, data=body, headers=headers) as response:
                    if response.status != 200:
                        raise RuntimeError(f"webhook answered {response.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _wait_for_echoes(sim: TelegramSimulator, count: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while len(sim.sends) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(sim.sends)} of {count} echoes within {limit}s")
        await asyncio.sleep(0.005)  # the benchmark's own progress check


# --- the Telegram side: simulator and load driver, in a child process -----------------------------


async def telegram_side() -> None:
    """Child process: the simulator plus the load driver, commanded line by line on stdin.

    Running them apart keeps their CPU out of Herald's process, as with the real Telegram.
    """
    sim = TelegramSimulator(token=BENCH_TOKEN)
    await sim.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"ready {sim.base_url} {sim.base_file_url}", flush=True)
    try:
        while line := (await reader.readline()).decode().split():
            if line[0] == "users":
                first, count = int(line[1]), int(line[2])
                for i in range(count):
                    sim.add_user(first + i, f"Person {i}")
                sim.reset()
                print("ok", flush=True)
            elif line[0] == "push":
                url, updates, users, concurrency = line[1], *map(int, line[2:5])
                bodies = [_update(n + 1, FIRST_USER + n % users) for n in range(updates)]
                started = time.perf_counter()
                await _push(url, bodies, concurrency)
                await _wait_for_echoes(sim, updates, limit=600)
                print(f"done {time.perf_counter() - started:.4f}", flush=True)
    finally:
        await sim.stop()


class TelegramSide:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ask(self, command: str) -> list[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return (await self.process.stdout.readline()).decode().split()


async def run_once(
    side: TelegramSide,
    urls: list[str],
    db_url: str,
    persistence: BotPersistence,
    args: argparse.Namespace,
) -> float:
    await _reset_and_link(db_url, args.users)
    await side.ask(f"users {FIRST_USER} {args.users}")
    port = _free_port()
    webhook_url = f"http://127.0.0.1:{port}/telegram/webhook"
    settings = load_settings(
        _env_file=None,
        database_url=db_url,
        port=port,
        log_level="WARNING",
        telegram_bot_token=BENCH_TOKEN,
        telegram_api_base_url=urls[0],
        telegram_api_file_url=urls[1],
        telegram_mode="webhook",
        telegram_webhook_url=webhook_url,
        telegram_webhook_secret=SECRET,
        # Telegram would hold a bot to ~30 messages/s; the simulator does not, and this measures
        # how many updates Herald itself can take, so the send budget is lifted.
        telegram_rate_per_second=1_000_000,
    )
    service = Service(settings, bot_persistence=persistence)
    await service.start()
    try:
        cpu = time.process_time()
        answer = await side.ask(
            f"push {webhook_url} {args.updates} {args.users} {args.concurrency}"
        )
        cpu = time.process_time() - cpu
    finally:
        await service.stop()
    elapsed = float(answer[1])
    rate = args.updates / elapsed
    print(
        f"{persistence:>8} persistence: {args.updates} updates in {elapsed:.2f}s = {rate:.0f}/s "
        f"(Herald's CPU: {cpu / args.updates * 1000:.2f} ms per update)"
    )
    return rate


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    async with throwaway_postgres() as db_url:
        return await _compare(args, db_url)


async def _compare(args: argparse.Namespace, db_url: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--telegram-side",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    side = TelegramSide(process)
    try:
        assert process.stdout is not None
        ready = (await process.stdout.readline()).decode().split()
        urls = ready[1:3]
        database = await run_once(side, urls, db_url, "database", args)
        memory = await run_once(side, urls, db_url, "memory", args)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        await process.wait()
    ratio = database / memory
    print(f"database persistence {database:.0f}/s, in-memory {memory:.0f}/s, ratio {ratio:.2f}")
    ok = database >= 500 and ratio >= 0.7
    print("targets (>= 500 updates/s, ratio >= 0.7):", "met" if ok else "NOT met")
    return 0 if ok else 1


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--telegram-side", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = _parse()
    if options.telegram_side:
        event_loop.run(telegram_side())
    else:
        sys.exit(event_loop.run(main(options)))
