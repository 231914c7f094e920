"""For the browser tests: a real ``herald run`` in sandbox mode (its own process, started as a
newcomer would: ``herald db upgrade``, then ``herald run``), the sandbox's Telegram simulator
driven over its control API to play the person, and Debian's Chromium through Playwright."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from tests.bot_support import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LISTENING = re.compile(r"Herald is listening on http://[^:]+:(\d+)")
PASSWORD = re.compile(r"Log in as (\S+) with the password (\S+)")


class Sandbox:
    """``herald run`` with no Telegram token: the simulator runs inside it."""

    def __init__(self, workdir: Path, database_url: str, **settings: str) -> None:
        self.workdir = workdir
        self.sim_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SMTP_"))}
        env.update(
            {
                "DATABASE_URL": database_url,
                "PORT": "0",
                "TELEGRAM_SANDBOX_PORT": str(self.sim_port),
                "DATA_DIR": str(workdir / "data"),
                "LOG_LEVEL": "INFO",
                "CONSOLE_TIMEZONE": "UTC",
                **{key.upper(): value for key, value in settings.items()},
            }
        )
        self.env = env
        self.log: list[str] = []
        self.port = 0
        self.admin: tuple[str, str] | None = None
        self._ready = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self._creating: dict[str, subprocess.Popen[bytes]] = {}

    def herald(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own command
            [sys.executable, "-m", "bot", *args],
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def create_users(self, *usernames: str) -> None:
        """Start ``herald users create`` for each (password ``NAME-password-1``), in the
        background: the commands take seconds to start, so they overlap the first test."""
        for username in usernames:
            process = subprocess.Popen(  # noqa: S603 - our own command
                [sys.executable, "-m", "bot", "users", "create", username, "--password-stdin"],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            assert process.stdin is not None
            process.stdin.write(f"{username}-password-1\n".encode())
            process.stdin.close()
            self._creating[username] = process

    def user(self, username: str) -> tuple[str, str]:
        """Once ``herald users create`` has succeeded: the user's name and password."""
        process = self._creating[username]
        assert process.stderr is not None
        code = process.wait(timeout=60)
        assert code == 0, process.stderr.read().decode()
        return username, f"{username}-password-1"

    def start(self, timeout: float = 40.0) -> None:
        upgraded = self.herald("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.port:
            self.stop()
            raise AssertionError("herald run did not start:\n" + "\n".join(self.log[-30:]))

    def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if match := PASSWORD.search(line):
                self.admin = (match.group(1), match.group(2))
            if match := LISTENING.search(line):  # said once everything runs
                self.port = int(match.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # --- playing the person, through the simulator's control API --------------------------------

    def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.sim_port}/_sim{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=70) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
        assert answer.get("ok"), answer
        return answer

    def messages_to(
        self, chat_id: int, *, after: int = 0, wait: float = 0.0
    ) -> list[dict[str, Any]]:
        found = self.sim("GET", f"/chats/{chat_id}/messages?after={after}&timeout={wait}")
        return list(found["messages"])

    def person_says(self, user_id: int, text: str) -> None:
        self.sim("POST", f"/users/{user_id}/text", {"text": text})

    def last_message_id(self, chat_id: int) -> int:
        messages = self.messages_to(chat_id)
        return int(messages[-1]["message_id"]) if messages else 0

    def next_messages(self, chat_id: int, after: int) -> list[dict[str, Any]]:
        """The bot's messages to ``chat_id`` after message ``after``, waiting for the first."""
        found = self.messages_to(chat_id, after=after, wait=20)
        assert found, f"the bot sent nothing more to {chat_id}"
        return found

    def register(self, user_id: int, name: str, phone: str) -> None:
        """A person starts the bot and shares their own number; returns once the bot answered."""
        self.sim("POST", "/users", {"user_id": user_id, "first_name": name})
        self.person_says(user_id, "/start")
        greeting = self.next_messages(user_id, 0)
        self.sim("POST", f"/users/{user_id}/contact", {"phone_number": phone.lstrip("+")})
        self.next_messages(user_id, int(greeting[-1]["message_id"]))
