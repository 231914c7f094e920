"""A webhook receiver on loopback (aiohttp on port 0) whose answers a test scripts, and the
README's own signature check."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

README = Path(__file__).resolve().parent.parent / "README.md"
Verify = Callable[[str, Any, bytes], bool]


def readme_verify() -> Verify:
    """The ``verify`` function of the README's Webhooks section, exactly as printed there."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "def verify" in b]
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10, "the README promises a ten-line example"
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    verify: Verify = namespace["verify"]
    return verify


@dataclass
class Received:
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


Answer = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def ok(_request: web.Request, _n: int) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class Receiver:
    url: str = ""
    answer: Answer = ok
    received: list[Received] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        n = len(self.received)
        async with self.changed:
            self.received.append(Received(request.headers, body))
            self.changed.notify_all()
        return await self.answer(request, n)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(20), self.changed:
            await self.changed.wait_for(lambda: len(self.received) >= count)

    def event_ids(self) -> list[str]:
        return [r.headers["Herald-Event-Id"] for r in self.received]


@asynccontextmanager
async def receiver(answer: Answer = ok, path: str = "/hook") -> AsyncIterator[Receiver]:
    """A receiver at ``http://127.0.0.1:<free port>/hook``."""
    target = Receiver(answer=answer)
    app = web.Application()
    app.router.add_post(path, target.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    target.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield target
    finally:
        await runner.cleanup()
