"""Running ``herald run`` as a real subprocess, for crash and end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from sandbox.telegram_simulator import TelegramSimulator

LISTENING = re.compile(r"Herald is listening on http://[^:]+:(\d+)")


class ServiceProcess:
    """``python -m bot run`` in its own process, configured only through its environment."""

    def __init__(self, workdir: Path, env: Mapping[str, str], *, role: str = "all") -> None:
        self._workdir = workdir
        self._env = {**os.environ, **env}
        self.role = role
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def for_simulator(
        cls,
        workdir: Path,
        database_url: str,
        sim: TelegramSimulator,
        *,
        role: str = "all",
        **settings: str,
    ) -> ServiceProcess:
        env = {
            "DATABASE_URL": database_url,
            "TELEGRAM_BOT_TOKEN": sim.token,
            "TELEGRAM_API_BASE_URL": sim.base_url,
            "TELEGRAM_API_FILE_URL": sim.base_file_url,
            "PORT": "0",
            "DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "INFO",
            **{key.upper(): value for key, value in settings.items()},
        }
        return cls(workdir, env, role=role)

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--role",
            self.role,
            cwd=self._workdir,  # no stray .env is read
            env=self._env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_log(ready))
        try:
            self.port = await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            await self.kill()
            raise TimeoutError("the service did not start:\n" + "\n".join(self.log[-30:])) from None

    async def _read_log(self, ready: asyncio.Future[int]) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if not ready.done() and (match := LISTENING.search(line)):
                ready.set_result(int(match.group(1)))
        if not ready.done():
            ready.set_exception(RuntimeError("the service exited:\n" + "\n".join(self.log[-30:])))

    async def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.kill()
        await self._wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log[-lines:])

    async def terminate(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """SIGTERM and wait for a clean exit; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self._wait(), timeout)

    async def _wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code
