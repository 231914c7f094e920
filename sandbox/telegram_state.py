"""Durable simulated people for the Telegram simulator: a JSON file, saved soon after each change.

What survives a restart: the users, their chats (blocked, deactivated, migrated), the last
:data:`HISTORY_LIMIT` messages of every chat in both directions (with what the bot sent, its
parsed entities, markup and files, and which messages were deleted), and the update_id and file
counters, so message ids and update ids keep increasing. Pending updates, webhooks, faults and
rate counters are not saved: they belong to one run.

:class:`StateFile` writes atomically (a temporary file in the same directory, then ``os.replace``)
at most once per ``delay`` seconds while changes keep coming, and once more on close. A file that
cannot be read or parsed is reported in one warning line and the simulator starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sandbox.telegram_models import JSON, SentFile, SentMessage, SimChat, SimUser

logger = logging.getLogger(__name__)

STATE_VERSION = 1
HISTORY_LIMIT = 200
_CHAT_FIELDS = tuple(
    f.name
    for f in fields(SimChat)
    if f.name not in {"sent", "sent_by_id", "messages", "deleted_messages"}
)
_SENT_FIELDS = frozenset(f.name for f in fields(SentMessage))
_USER_FIELDS = frozenset(f.name for f in fields(SimUser))
_FILE_FIELDS = frozenset(f.name for f in fields(SentFile))


class StateError(ValueError):
    """The state file does not hold a simulator state this version understands."""


@dataclass(slots=True)
class SimState:
    """Everything the simulator keeps across restarts."""

    users: dict[int, SimUser] = field(default_factory=dict)
    chats: dict[int, SimChat] = field(default_factory=dict)
    files: dict[str, SentFile] = field(default_factory=dict)
    next_update_id: int = 1
    next_file_number: int = 1


# --------------------------------------------------------------------------- (de)serialisation


def _chat_to_json(chat: SimChat) -> JSON:
    kept = sorted(set(chat.messages) | set(chat.deleted_messages))[-HISTORY_LIMIT:]
    history = [
        {
            "message_id": message_id,
            "deleted": message_id in chat.deleted_messages,
            "message": chat.messages.get(message_id) or chat.deleted_messages[message_id],
        }
        for message_id in kept
    ]
    sent = [asdict(chat.sent_by_id[i]) for i in kept if i in chat.sent_by_id]
    return {
        **{name: getattr(chat, name) for name in _CHAT_FIELDS},
        "history": history,
        "sent": sent,
    }


def to_json(state: SimState) -> JSON:
    return {
        "version": STATE_VERSION,
        "next_update_id": state.next_update_id,
        "next_file_number": state.next_file_number,
        "users": [asdict(user) for user in state.users.values()],
        "chats": [_chat_to_json(chat) for chat in state.chats.values()],
    }


def _known(data: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """Only the fields this version knows (a newer file may carry more)."""
    return {key: value for key, value in data.items() if key in names}


def _sent_from_json(data: Mapping[str, Any]) -> SentMessage:
    values = _known(data, _SENT_FIELDS)
    raw_file = values.get("file")
    values["file"] = SentFile(**_known(raw_file, _FILE_FIELDS)) if raw_file else None
    return SentMessage(**values)


def _chat_from_json(data: Mapping[str, Any]) -> SimChat:
    chat = SimChat(**{name: data[name] for name in _CHAT_FIELDS if name in data})
    for entry in data.get("history", []):
        message_id, message = int(entry["message_id"]), entry["message"]
        if not isinstance(message, dict):
            raise StateError(f"chat {chat.chat_id}: message {message_id} is not an object")
        target = chat.deleted_messages if entry.get("deleted") else chat.messages
        target[message_id] = message
    for raw in data.get("sent", []):
        sent = _sent_from_json(raw)
        chat.sent.append(sent)
        chat.sent_by_id[sent.message_id] = sent
    chat.sent.sort(key=lambda message: message.message_id)
    return chat


def from_json(data: Any) -> SimState:
    """Rebuild the state; raises :class:`StateError` (or KeyError/TypeError) on a bad shape."""
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise StateError(f"not a version {STATE_VERSION} Telegram simulator state")
    state = SimState(
        next_update_id=int(data["next_update_id"]),
        next_file_number=int(data["next_file_number"]),
    )
    for raw_user in data["users"]:
        user = SimUser(**_known(raw_user, _USER_FIELDS))
        state.users[user.user_id] = user
    for raw_chat in data["chats"]:
        chat = _chat_from_json(raw_chat)
        state.chats[chat.chat_id] = chat
        for sent in chat.sent:
            if sent.file is not None:
                state.files[sent.file.file_id] = sent.file
    return state


# --------------------------------------------------------------------------- the file


def _write_atomically(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise


class StateFile:
    """Loads the state once and saves it, debounced, after changes (no-op without a path)."""

    def __init__(
        self, path: Path | None, snapshot: Callable[[], SimState], *, delay: float = 0.5
    ) -> None:
        self.path = path
        self.delay = delay
        self.writes = 0
        self._snapshot = snapshot
        self._dirty = False
        self._failing = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self) -> SimState | None:
        """The saved state; None when there is none or it is unusable (one warning line)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            return from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "Telegram simulator state %s is unreadable (%s: %s); starting with no users",
                self.path,
                type(exc).__name__,
                exc,
            )
            return None

    def changed(self) -> None:
        """Note a change; it is written within ``delay`` seconds (or at close)."""
        if self.path is None:
            return
        self._dirty = True
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None or (self._task is not None and not self._task.done()):
            return  # a write is due already; a running write reschedules when it ends
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not running yet: written once the simulator runs, or at close
        self._timer = loop.call_later(self.delay, self._due)

    def _due(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        if self.path is None or not self._dirty:
            return
        self._dirty = False
        data = json.dumps(to_json(self._snapshot()), ensure_ascii=False)
        try:
            await asyncio.to_thread(_write_atomically, self.path, data)
        except OSError as exc:
            self._dirty = True
            if not self._failing:
                logger.warning("cannot save Telegram simulator state to %s: %s", self.path, exc)
            self._failing = True
            return
        self.writes += 1
        self._failing = False
        self._task = None
        if self._dirty:
            self._schedule()

    def resume(self) -> None:
        """Schedule the write of changes made before the event loop ran."""
        if self._dirty:
            self._schedule()

    async def close(self) -> None:
        """Write what is still unsaved, now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await asyncio.shield(self._task)
            self._task = None
        if self._dirty:
            await self._write()
