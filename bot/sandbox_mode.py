"""Sandbox mode: with no TELEGRAM_BOT_TOKEN the Bot API simulator runs inside the process.

A newcomer runs ``make run`` and, in a second terminal, ``make chat`` (``herald chat``) to play a
recipient: /start, share a phone number, read what the bot answers and what it broadcasts.

The simulator takes a free port unless TELEGRAM_SANDBOX_PORT is set, so a taken port never stops
a first run and two sandboxes (with different DATA_DIRs) never collide. Once the service is up it
writes ``DATA_DIR/sandbox.json`` (the simulator's control URL, the admin API's URL and its pid);
``herald chat`` reads it, and a clean stop removes it. A file whose process is gone is stale and
ignored. The simulated people and chats are kept in ``DATA_DIR/sandbox-telegram.json``, so a
person registered yesterday still gets today's broadcast after a restart.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.context import TelegramEndpoint
from bot.settings import Settings
from sandbox.telegram_simulator import TelegramSimulator

log = logging.getLogger(__name__)

SANDBOX_HOST = "127.0.0.1"
SANDBOX_FILE = "sandbox.json"
SIMULATOR_STATE_FILE = "sandbox-telegram.json"


class SandboxBusyError(Exception):
    """Another live Herald sandbox already uses this DATA_DIR."""


class SandboxNotRunningError(Exception):
    """No live sandbox for this DATA_DIR; the message says what to do."""


@dataclass(frozen=True)
class SandboxInfo:
    """What ``DATA_DIR/sandbox.json`` holds while a sandbox runs."""

    control_url: str  # the simulator's /_sim control API (herald chat)
    api_url: str  # the admin API and health checks
    pid: int


def telegram_endpoint(settings: Settings) -> TelegramEndpoint:
    """The real Bot API (telegram.org or a self-hosted server) for a configured token."""
    if settings.telegram_bot_token is None:
        raise ValueError("no TELEGRAM_BOT_TOKEN: use the sandbox endpoint")
    return TelegramEndpoint(
        token=settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_api_file_url,
        sandbox=False,
    )


def sandbox_endpoint(simulator: TelegramSimulator) -> TelegramEndpoint:
    return TelegramEndpoint(
        token=simulator.token,
        base_url=simulator.base_url,
        base_file_url=simulator.base_file_url,
        sandbox=True,
    )


def sandbox_file(settings: Settings) -> Path:
    return settings.data_dir / SANDBOX_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive all the same
        return True
    return True


def _read(path: Path) -> SandboxInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SandboxInfo(str(data["control_url"]), str(data["api_url"]), int(data["pid"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring %s: it is not a sandbox file Herald wrote", path)
        return None


def read_sandbox_info(settings: Settings) -> SandboxInfo:
    """The running sandbox of this DATA_DIR, or SandboxNotRunningError saying why not."""
    path = sandbox_file(settings)
    info = _read(path)
    start = "start it with `make run` (no TELEGRAM_BOT_TOKEN means sandbox mode)"
    if info is None:
        raise SandboxNotRunningError(
            f"no sandbox is running with DATA_DIR={settings.data_dir}: {start}"
        )
    if not _alive(info.pid):
        raise SandboxNotRunningError(
            f"{path} is stale (process {info.pid} is not running): the sandbox stopped "
            f"without cleaning up; {start}"
        )
    return info


def claim_sandbox(settings: Settings) -> None:
    """Refuse to start a second sandbox on this DATA_DIR; a stale file is ignored, said once."""
    path = sandbox_file(settings)
    info = _read(path)
    if info is None or info.pid == os.getpid():
        return
    if _alive(info.pid):
        raise SandboxBusyError(
            f"another Herald sandbox (process {info.pid}, {info.api_url}) is running with "
            f"DATA_DIR={settings.data_dir}: stop it first, or give this one its own DATA_DIR"
        )
    log.info("ignoring the stale %s of process %d, which is not running", path, info.pid)


def write_sandbox_info(settings: Settings, info: SandboxInfo) -> Path:
    """Write the file atomically, so ``herald chat`` never reads half of it."""
    path = sandbox_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def remove_sandbox_info(settings: Settings) -> None:
    """Remove the file on a clean stop, if it is still ours."""
    path = sandbox_file(settings)
    info = _read(path)
    if info is not None and info.pid == os.getpid():
        path.unlink(missing_ok=True)


async def start_simulator(settings: Settings) -> TelegramSimulator:
    """Start the simulator (a free port unless TELEGRAM_SANDBOX_PORT is set) and say loudly
    that this is a sandbox."""
    claim_sandbox(settings)
    simulator = TelegramSimulator(state_path=settings.data_dir / SIMULATOR_STATE_FILE)
    await simulator.start(SANDBOX_HOST, settings.telegram_sandbox_port or 0)
    log.warning(
        "SANDBOX MODE: no TELEGRAM_BOT_TOKEN is set, so the bot talks to a local Telegram "
        "simulator at %s and nobody on Telegram can reach it. To chat with the bot as a "
        "recipient, run `make chat` (or `.venv/bin/herald chat`) in another terminal; create a "
        "recipient to register as with `.venv/bin/herald recipients add --name NAME --phone "
        "NUMBER`. Set TELEGRAM_BOT_TOKEN to use the real Telegram.",
        simulator.control_url,
    )
    return simulator
