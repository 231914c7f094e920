"""A TCP proxy on loopback that a test can cut and restore: a real network fault, no mocks.

Put it between Herald and a server (PostgreSQL, a simulator) and point Herald at ``proxy.port``:

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = postgres_url_with_port(proxy.port)
        ...
        await proxy.cut()      # every open connection is closed; new ones are refused
        await proxy.restore()  # connections go through again, on the same port

``cut(mode="drop")`` accepts new connections and closes them at once (the peer sees the
connection reset or closed instead of refused); ``cut(mode="hang")`` accepts them and never
answers, as a server that stopped responding would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Self

CutMode = Literal["refuse", "drop", "hang"]
_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.mode: CutMode | None = None  # None: forwarding
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._release = asyncio.Event()  # set: connections left hanging may end

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self._listen()
        assert self._server is not None
        self.port = self._server.sockets[0].getsockname()[1]

    async def _listen(self) -> None:
        # "refuse" closes the listening socket; restore() binds the same port again.
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Handlers count as open until they end (Python 3.12+ waits for them): end them first.
        await self._close_connections()
        await server.wait_closed()

    async def cut(self, mode: CutMode = "refuse") -> None:
        """Close every open connection; new ones are then refused, dropped or left hanging."""
        self.mode = mode
        if mode == "refuse":
            await self._stop_listening()
        await self._close_connections()

    async def restore(self) -> None:
        """Forward connections again (those left hanging by "hang" are closed)."""
        if self.mode is None:
            return
        await self._close_connections()
        was_refusing = self.mode == "refuse"
        self.mode = None
        if was_refusing:
            await self._listen()

    async def close(self) -> None:
        await self._stop_listening()
        await self._close_connections()

    async def _close_connections(self) -> None:
        # Aborting the transports ends every pipe by itself: no task is cancelled mid-write.
        self._release.set()
        self._release = asyncio.Event()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.mode == "drop":
                return
            if self.mode == "hang":
                await self._release.wait()  # until restore() or close()
                return
            await self._forward(reader, writer)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            return
        self._writers.add(upstream_writer)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_pipe(reader, upstream_writer))
                group.create_task(_pipe(upstream_reader, writer))
        except* OSError:
            pass  # either side went away: both are closed below
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()  # a half-close travels on, so the other side sees the end too


def tcp_proxy(target_host: str, target_port: int) -> TcpProxy:
    """``async with tcp_proxy(host, port) as proxy``: a started proxy, closed afterwards."""
    return TcpProxy(target_host, target_port)
