"""``herald chat``: play a recipient against the sandbox bot from a terminal.

Talks to the Telegram simulator's control API (``/_sim/``) of a ``herald run`` in sandbox mode:
what you type is sent as your Telegram messages, and what the bot sends you is printed as it
arrives (a long poll). Lines starting with these words stay in the client:

  /contact            share your own phone number (the --phone option), as the button would
  /contact NUMBER     share another number as your own
  /contact-of NUMBER  share someone else's contact card (the bot must refuse it)
  /block, /unblock    block or unblock the bot
  /quit               leave (Ctrl-D works too)
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
RETRY_SECONDS = 2.0

ReadLine = Callable[[], Awaitable[str | None]]
Write = Callable[[str], None]


class SandboxUnreachableError(Exception):
    """The simulator's control API does not answer: is ``herald run`` up in sandbox mode?"""


@dataclass(frozen=True)
class ChatOptions:
    control_url: str
    user_id: int = 10001
    first_name: str = "Sandbox User"
    phone: str = "+393331234567"
    language: str = "en"


def banner(options: ChatOptions) -> str:
    return (
        f"You are {options.first_name} (Telegram user {options.user_id}, phone {options.phone}),"
        f" chatting with the sandbox bot at {options.control_url}.\n"
        "Type /start to register, /contact to share your number when the bot asks for it, "
        "/quit to leave.\n"
        "If the bot does not know your number, add it in another terminal:\n"
        f"  herald recipients add --name {options.first_name!r} --phone {options.phone}\n"
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


class ChatClient:
    def __init__(
        self, options: ChatOptions, http: aiohttp.ClientSession, read_line: ReadLine, write: Write
    ) -> None:
        self.options = options
        self._http = http
        self._read_line = read_line
        self._write = write
        self._last_seen = 0

    def _url(self, path: str) -> str:
        return f"{self.options.control_url.rstrip('/')}{path}"

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self._http.post(self._url(path), json=body or {}) as response:
            answer: dict[str, Any] = await response.json()
        if not answer.get("ok"):
            self._write(f"!! {answer.get('error', 'the simulator refused that')}")
        return answer

    async def join(self) -> None:
        """Become a user of the simulator and skip the history of earlier sessions."""
        body = {
            "user_id": self.options.user_id,
            "first_name": self.options.first_name,
            "language_code": self.options.language,
        }
        try:
            await self._post("/users", body)
            messages = await self._messages(wait_seconds=0)
        except aiohttp.ClientError as exc:
            raise SandboxUnreachableError(
                f"cannot reach the sandbox at {self.options.control_url} ({exc}); start the "
                "service first with `make run` (no TELEGRAM_BOT_TOKEN means sandbox mode)"
            ) from exc
        if messages:
            self._last_seen = max(int(m["message_id"]) for m in messages)

    async def _messages(self, wait_seconds: float) -> list[dict[str, Any]]:
        url = self._url(f"/chats/{self.options.user_id}/messages")
        params = {"after": str(self._last_seen), "timeout": str(wait_seconds)}
        client_timeout = aiohttp.ClientTimeout(total=wait_seconds + 15)
        async with self._http.get(url, params=params, timeout=client_timeout) as response:
            answer: dict[str, Any] = await response.json()
        found: list[dict[str, Any]] = answer.get("messages", [])
        return found

    async def watch(self) -> None:
        """Print the bot's messages as they arrive, until cancelled."""
        while True:
            try:
                messages = await self._messages(wait_seconds=POLL_SECONDS)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._write(f"!! lost the sandbox ({type(exc).__name__}); retrying")
                await asyncio.sleep(RETRY_SECONDS)  # back-off before reconnecting
                continue
            for message in messages:
                self._last_seen = max(self._last_seen, int(message["message_id"]))
                self._write(render(message))

    async def handle(self, line: str) -> None:
        """Carry out one typed line."""
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

    async def run(self) -> None:
        await self.join()
        self._write(banner(self.options))
        watcher = asyncio.create_task(self.watch())
        try:
            while (line := await self._read_line()) is not None:
                line = line.strip()
                if line == "/quit":
                    break
                if line:
                    await self.handle(line)
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


async def chat(options: ChatOptions, redact: Callable[[str], str] = str) -> None:
    """Chat in this terminal; every line printed goes through ``redact`` (the secrets)."""

    def write(text: str) -> None:
        terminal_write(redact(text))

    async with aiohttp.ClientSession() as http:
        await ChatClient(options, http, stdin_reader(), write).run()
