"""``herald chat``: play a recipient against the sandbox bot from a terminal.

Talks to the Telegram simulator's control API (``/_sim/``) of a ``herald run`` in sandbox mode:
what you type is sent as your Telegram messages, and what the bot sends you is printed as it
arrives (a long poll). Lines starting with these words stay in the client:

  /contact            share your own phone number (the --phone option), as the button would
  /contact NUMBER     share another number as your own
  /contact-of NUMBER  share someone else's contact card (the bot must refuse it)
  /block, /unblock    block or unblock the bot
  /quit               leave (Ctrl-D works too)

When the sandbox goes away (``make run`` stopped or restarting) the client says so once, tries
again with capped exponential backoff, and says so once more when it is back, joining as the same
user again. With input piped in (a script), it waits until the bot has been quiet for a moment
before leaving, so the answers to the last lines are printed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

POLL_SECONDS = 25.0

ReadLine = Callable[[], Awaitable[str | None]]
Write = Callable[[str], None]
Locate = Callable[[], str]  # the simulator's control URL now (may raise SandboxUnreachableError)


class SandboxUnreachableError(Exception):
    """The simulator's control API does not answer: is ``herald run`` up in sandbox mode?"""


@dataclass(frozen=True)
class ChatOptions:
    control_url: str
    user_id: int = 10001
    first_name: str = "Sandbox User"
    phone: str = "+393331234567"
    language: str = "en"


def banner(options: ChatOptions, url: str) -> str:
    return (
        f"You are {options.first_name} (Telegram user {options.user_id}, phone {options.phone}),"
        f" chatting with the sandbox bot at {url}.\n"
        "Type /start to register, /contact to share your number when the bot asks for it, "
        "/quit to leave.\n"
        "If the bot does not know your number, add it in another terminal:\n"
        f"  .venv/bin/herald recipients add --name {options.first_name!r} --phone {options.phone}\n"
    )


def render(message: dict[str, Any]) -> str:
    """One bot message as terminal lines, with its buttons spelled out."""
    body = message.get("visible_text") or message.get("text") or message.get("caption") or ""
    file = message.get("file")
    if file:
        body = (
            f"[{message.get('method', 'file')}: {file.get('name') or file.get('file_id')}] {body}"
        )
    lines = [f"bot> {line}" for line in str(body).splitlines() or [""]]
    markup = message.get("reply_markup") or {}
    for row in markup.get("keyboard", []):
        for button in row:
            label = button.get("text", "") if isinstance(button, dict) else str(button)
            hint = (
                " (type /contact)"
                if isinstance(button, dict) and button.get("request_contact")
                else ""
            )
            lines.append(f"     [button: {label}]{hint}")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            lines.append(f"     [inline button: {button.get('text', '')}]")
    return "\n".join(lines)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential waits between reconnection attempts."""

    initial: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.initial * 2 ** min(attempt, 30)))


class SandboxLostError(Exception):
    """The simulator stopped answering (or forgot us) in the middle of a session."""


class ChatClient:
    """One person's terminal session; survives the sandbox going away and coming back.

    ``locate`` gives the simulator's control URL each time the client (re)connects: ``herald
    chat`` re-reads ``DATA_DIR/sandbox.json``, since a restarted sandbox may have a new port.
    """

    def __init__(
        self,
        options: ChatOptions,
        http: aiohttp.ClientSession,
        read_line: ReadLine,
        write: Write,
        *,
        locate: Locate | None = None,
        backoff: Backoff = Backoff(),
        linger: float = 0.0,
    ) -> None:
        self.options = options
        self._http = http
        self._read_line = read_line
        self._write = write
        self._locate = locate or (lambda: options.control_url)
        self._backoff = backoff
        self._linger = linger
        self._url = options.control_url
        self._last_seen = 0
        self._joined = False
        self._connected = asyncio.Event()
        self._activity = asyncio.Event()
        self.reconnect_attempts = 0

    def _path(self, path: str) -> str:
        return f"{self._url.rstrip('/')}{path}"

    async def _call(
        self, method: str, path: str, *, seconds: float = 15.0, **kwargs: Any
    ) -> dict[str, Any]:
        """One control API call; a lost or amnesic simulator is SandboxLostError."""
        try:
            async with self._http.request(
                method, self._path(path), timeout=aiohttp.ClientTimeout(total=seconds), **kwargs
            ) as response:
                answer: dict[str, Any] = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SandboxLostError(type(exc).__name__) from None
        if status == 404:  # a simulator restarted without its state no longer knows us
            raise SandboxLostError(str(answer.get("error", "not found")))
        if status >= 500:
            raise SandboxLostError(f"HTTP {status}")
        return answer

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        answer = await self._call("POST", path, json=body or {})
        if not answer.get("ok"):
            self._write(f"!! {answer.get('error', 'the simulator refused that')}")

    async def _connect(self) -> None:
        """Find the simulator, become (again) its user, and skip what was already shown."""
        self._url = self._locate()
        body = {
            "user_id": self.options.user_id,
            "first_name": self.options.first_name,
            "language_code": self.options.language,
        }
        await self._post("/users", body)
        shown = await self._messages(after=0, wait_seconds=0)
        newest = max((int(m["message_id"]) for m in shown), default=0)
        if not self._joined or newest < self._last_seen:
            # First contact (earlier sessions' history is not shown again), or a simulator that
            # lost its history: start from what it has. Otherwise what arrived while we were
            # away is shown by the next poll.
            self._last_seen = newest
        self._joined = True
        self._connected.set()

    async def join(self) -> None:
        """Connect for the first time; an unreachable sandbox is SandboxUnreachableError."""
        try:
            await self._connect()
        except SandboxLostError as exc:
            raise SandboxUnreachableError(
                f"cannot reach the sandbox at {self._url} ({exc}); start the service first with "
                "`make run` (no TELEGRAM_BOT_TOKEN means sandbox mode)"
            ) from None

    async def _reconnect(self, reason: str) -> None:
        """Wait (capped exponential backoff) until the sandbox answers again; one line each way."""
        self._connected.clear()
        self._write(f"!! lost the sandbox ({reason}); reconnecting...")
        attempt = 0
        while True:
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1
            self.reconnect_attempts += 1
            try:
                await self._connect()
            except (SandboxLostError, SandboxUnreachableError):
                continue
            self._write(f"!! back: connected to the sandbox at {self._url}")
            return

    async def _messages(self, *, after: int, wait_seconds: float) -> list[dict[str, Any]]:
        params = {"after": str(after), "timeout": str(wait_seconds)}
        answer = await self._call(
            "GET",
            f"/chats/{self.options.user_id}/messages",
            params=params,
            seconds=wait_seconds + 15,
        )
        found: list[dict[str, Any]] = answer.get("messages", [])
        return found

    async def watch(self) -> None:
        """Print the bot's messages as they arrive, until cancelled."""
        while True:
            try:
                messages = await self._messages(after=self._last_seen, wait_seconds=POLL_SECONDS)
            except SandboxLostError as exc:
                await self._reconnect(str(exc))
                continue
            for message in messages:
                self._last_seen = max(self._last_seen, int(message["message_id"]))
                self._write(render(message))
                self._activity.set()

    async def handle(self, line: str) -> None:
        """Carry out one typed line (it is not sent while the sandbox is away)."""
        if not self._connected.is_set():
            self._write("!! not connected to the sandbox: not sent, type it again once it is back")
            return
        try:
            await self._send(line)
        except SandboxLostError:
            self._write("!! the sandbox did not take that: not sent, type it again once it is back")
        self._activity.set()

    async def _send(self, line: str) -> None:
        user = f"/users/{self.options.user_id}"
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "/contact":
            phone = rest or self.options.phone
            # Telegram sends contact numbers without the "+" and without spaces.
            number = "".join(ch for ch in phone if ch.isdigit())
            await self._post(f"{user}/contact", {"phone_number": number})
        elif word == "/contact-of" and rest:
            number = "".join(ch for ch in rest if ch.isdigit())
            body = {"phone_number": number, "contact_user_id": self.options.user_id + 1}
            await self._post(f"{user}/contact", {**body, "first_name": "Someone Else"})
        elif word == "/block":
            await self._post(f"{user}/block")
        elif word == "/unblock":
            await self._post(f"{user}/unblock")
        else:
            await self._post(f"{user}/text", {"text": line})

    async def _quiet(self) -> None:
        """After the input ends (a script piped in), wait until the bot has been quiet."""
        while self._linger > 0:
            self._activity.clear()
            try:
                await asyncio.wait_for(self._activity.wait(), self._linger)
            except TimeoutError:
                return

    async def run(self) -> None:
        await self.join()
        self._write(banner(self.options, self._url))
        watcher = asyncio.create_task(self.watch())
        try:
            while (line := await self._read_line()) is not None:
                line = line.strip()
                if line == "/quit":
                    break
                if line:
                    await self.handle(line)
            else:
                await self._quiet()
        finally:
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise


def stdin_reader() -> ReadLine:
    """Lines from the terminal, read by a daemon thread so Ctrl-C never waits for Enter."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="herald-chat-stdin", daemon=True).start()

    async def read_line() -> str | None:
        return await queue.get()

    return read_line


def terminal_write(text: str) -> None:
    print(text, flush=True)


async def chat(
    options: ChatOptions, locate: Locate | None = None, redact: Callable[[str], str] = str
) -> None:
    """The terminal session; with piped input it waits for the bot's answers before leaving.
    Every line printed goes through ``redact`` (the secrets)."""
    linger = 0.0 if sys.stdin.isatty() else 3.0

    def write(text: str) -> None:
        terminal_write(redact(text))

    async with aiohttp.ClientSession() as http:
        client = ChatClient(options, http, stdin_reader(), write, locate=locate, linger=linger)
        await client.run()
