"""Run a simulator in its own process: ``python -m sandbox.serve telegram --users 1000:5000``.

Benchmarks and crash tests use this so the simulator does not share a CPU core's event loop with
the process it measures. It prints ``READY <base url>`` once listening, then
``CONTROL <control API url>``, and runs until SIGTERM/SIGINT. ``--state FILE`` keeps the Telegram
simulator's people and chats across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator


def _user_range(text: str) -> range:
    start, _, count = text.partition(":")
    return range(int(start), int(start) + int(count or 0))


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    simulator: TelegramSimulator | SkebbySimulator
    if args.service == "telegram":
        state = Path(args.state) if args.state else None
        if args.token:
            telegram = TelegramSimulator(args.token, state_path=state)
        else:
            telegram = TelegramSimulator(state_path=state)
        for user_id in _user_range(args.users):
            telegram.add_user(user_id, f"User {user_id}")
        if args.fault_429 or args.fault_5xx:
            telegram.set_fault_rates(rate_429=args.fault_429, rate_5xx=args.fault_5xx, seed=7)
        simulator = telegram
    else:
        simulator = SkebbySimulator()
    await simulator.start(args.host, args.port)
    sys.stdout.write(f"READY {simulator.base_url}\nCONTROL {simulator.control_url}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=["telegram", "skebby"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="")
    parser.add_argument("--users", default="0:0", help="START:COUNT private chats that exist")
    parser.add_argument("--fault-429", type=float, default=0.0)
    parser.add_argument("--fault-5xx", type=float, default=0.0)
    parser.add_argument("--state", default="", help="Telegram: JSON file of people and chats")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
