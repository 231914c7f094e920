"""SQLite runs one Herald process: a second one is refused with a clear message.

The claim is a leadership like the others (``persistence/leaders.py``), held and renewed for as
long as the process runs. A process killed without a clean stop leaves its claim behind until it
expires; when the holder was on this machine and its process id is gone, the claim is taken over
at once, so ``make run`` right after a crash starts normally.
"""

from __future__ import annotations

import os
import socket

from bot.leadership import Elector, LeadershipObserver
from bot.settings import ConfigurationError
from persistence import leaders
from persistence.database import SessionFactory

CLAIM = "sqlite-process"


class SingleProcessError(ConfigurationError):
    """Another Herald process already runs on this SQLite database."""


async def _nothing() -> None:
    return None


async def _nothing_lost(_clean: bool) -> None:
    return None


def _gone(holder: str) -> bool:
    """True when ``holder`` (host:pid:...) names a process of this machine that has ended."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another Service in this very process: it is alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def claim_single_process(
    sessions: SessionFactory, holder: str, observer: LeadershipObserver | None = None
) -> Elector:
    """Claim the database for this process (kept by an elector until it stops), or refuse."""
    async with sessions.begin() as session:
        current = await leaders.holder_of(session, CLAIM)
        if current is not None and current.holder != holder and _gone(current.holder):
            # The process died without a clean stop: what it led is free at once.
            await leaders.release_all_of(session, current.holder)
    elector = Elector(
        CLAIM, holder, sessions, on_elected=_nothing, on_lost=_nothing_lost, observer=observer
    )
    await elector.start()
    if not elector.holds:
        await elector.stop()
        host, _, rest = (current.holder if current else "?:?").partition(":")
        raise SingleProcessError(
            "SQLite runs one Herald process and another one is running "
            f"(on {host}, process {rest.partition(':')[0]}); use PostgreSQL to run several"
        )
    return elector
