"""An SMTP sink in its own process for the benchmarks: accepts and counts every message.

Prints ``READY <port>`` once listening; on SIGTERM prints ``RECEIVED <count>`` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP

from bot import event_loop


class CountingHandler:
    def __init__(self, latency: float) -> None:
        self.received = 0
        self.latency = latency

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.latency:
            await asyncio.sleep(self.latency)  # a slow mail server
        self.received += 1
        return "250 OK"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per message")
    handler = CountingHandler(parser.parse_args().latency)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()
    sys.stdout.write(f"RECEIVED {handler.received}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    event_loop.run(main())
