#!/usr/bin/env python3
"""CI's first-run check: a newcomer's first ten minutes, on a fresh clone of the commit.

In a temporary folder: `git clone` the committed HEAD, `make run` in the background (nothing
installed beforehand; PORT=0 and no TELEGRAM_SANDBOX_PORT, so every port is found free and
DATA_DIR/sandbox.json says where things are), wait for /healthz and /readyz, then run the
README's quick start exactly as written (the shell block after the `first-run` marker: add a
recipient, register through `make chat` with the typed lines piped in, broadcast and wait until
delivered), check the bot's message arrived, SIGTERM the service and require a clean exit within
20 s. Then once more after a restart: nothing is reinstalled, and the person registered before the
restart receives the next broadcast.

Standard library only: it runs before any virtualenv exists. Exit 0 when all of it worked;
otherwise 1 with "FIRST RUN FAILED" and the step, the reason and the service's last log lines.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- first-run: the quick start, run as written by .ci/first_run.py -->"
# What a person types into `make chat` (the README says so next to the command).
CHAT_INPUT = "/start\n/contact\n"
SANDBOX_USER = 10001  # herald chat's default Telegram user
INSTALL_TIMEOUT = 600.0  # creating .venv and installing the lock on a slow machine
STEP_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
STARTED = time.monotonic()


class FirstRunError(Exception):
    pass


def say(message: str) -> None:
    print(f"first run [{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def quick_start_commands(readme: Path) -> list[str]:
    """The shell block after the marker, one command per line, comments kept for the shell."""
    text = readme.read_text(encoding="utf-8")
    if MARKER not in text:
        raise FirstRunError(f"the README has no quick start marked with {MARKER!r}")
    block = re.search(r"```sh\n(.*?)```", text.split(MARKER, 1)[1], flags=re.S)
    if block is None:
        raise FirstRunError("no ```sh block follows the first-run marker in the README")
    return [line for line in block.group(1).splitlines() if line.strip()]


def newcomer_env() -> dict[str, str]:
    """This environment without any of Herald's settings (a newcomer has none), PORT=0."""
    names = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("HERALD_")}
    env["PORT"] = "0"  # the HTTP port is found free; sandbox.json names it
    return env


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Service:
    """`make run` in the background, its output in a file."""

    def __init__(self, clone: Path, env: dict[str, str], log: Path) -> None:
        self.clone, self.env, self.log_path = clone, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["make", "run"],
            cwd=self.clone,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a failure below can stop the whole group
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def sandbox(self, timeout: float) -> dict[str, Any]:
        """DATA_DIR/sandbox.json, written once the service is fully up."""
        path = self.clone / "data" / "sandbox.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise FirstRunError(f"`make run` exited with {self.process.returncode}")
            if path.exists():
                info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                return info
            time.sleep(0.2)
        raise FirstRunError(f"{path} did not appear within {timeout:.0f}s")

    def stop(self, pid: int) -> float:
        """SIGTERM to Herald (make's child), as a person's Ctrl-C would; the seconds it took."""
        assert self.process is not None
        began = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise FirstRunError(f"no exit within {STOP_TIMEOUT:.0f}s of SIGTERM") from None
        if code != 0:
            raise FirstRunError(f"`make run` exited with {code} after SIGTERM")
        return time.monotonic() - began

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_ready(api_url: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        health, _ = get_json(f"{api_url}/healthz")
        ready, last = get_json(f"{api_url}/readyz")
        if health == 200 and ready == 200:
            return
        time.sleep(0.5)
    raise FirstRunError(f"/readyz did not turn ready: {last}")


def run_command(line: str, clone: Path, env: dict[str, str]) -> str:
    feed = CHAT_INPUT if shlex.split(line, comments=True)[:2] == ["make", "chat"] else None
    say(f"$ {line}" + ("   (typing: /start, /contact)" if feed else ""))
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=clone,
        env=env,
        input=feed or "",
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    output = (done.stdout + done.stderr).strip()
    for shown in output.splitlines()[-12:]:
        print(f"    | {shown}", flush=True)
    if done.returncode != 0:
        raise FirstRunError(f"`{line}` exited with {done.returncode}")
    return output


def bot_messages(control_url: str) -> list[str]:
    _, answer = get_json(f"{control_url}/chats/{SANDBOX_USER}/messages")
    return [str(m.get("text", "")) for m in (answer or {}).get("messages", [])]


def play(clone: Path, env: dict[str, str], service: Service, round_: int) -> None:
    info = service.sandbox(INSTALL_TIMEOUT if round_ == 1 else STEP_TIMEOUT)
    say(f"Herald is up (pid {info['pid']}): API {info['api_url']}, sandbox {info['control_url']}")
    wait_ready(info["api_url"])
    say("/healthz and /readyz answer 200")
    commands = quick_start_commands(clone / "README.md")
    broadcasts = [c for c in commands if " broadcast " in f" {c} "]
    if not broadcasts:
        raise FirstRunError("the quick start has no broadcast command")
    # First run: the whole quick start. After the restart: only today's broadcast, to the
    # person registered yesterday (the simulated Telegram user is kept under DATA_DIR).
    for line in commands if round_ == 1 else broadcasts:
        output = run_command(line, clone, env)
        if line.startswith("make chat") and "registered as" not in output:
            raise FirstRunError("`make chat` did not register the person")
    texts = bot_messages(info["control_url"])
    body = shlex.split(broadcasts[0])[shlex.split(broadcasts[0]).index("--body") + 1]
    if texts.count(body) != round_:
        raise FirstRunError(f"the person received {body!r} {texts.count(body)} times, not {round_}")
    say(f"the sandbox person received {body!r} ({round_} so far)")
    took = service.stop(int(info["pid"]))
    say(f"SIGTERM: clean exit in {took:.1f}s")
    if (clone / "data" / "sandbox.json").exists():
        raise FirstRunError("data/sandbox.json is still there after a clean stop")
    if "Traceback" in service.log():
        raise FirstRunError("a traceback in the service's output")


def first_run(workdir: Path) -> None:
    clone = workdir / "herald"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head], cwd=clone, check=True)
    say(f"cloned {head[:12]} into {clone}")
    env = newcomer_env()
    for round_ in (1, 2):
        log = workdir / f"make-run-{round_}.log"
        service = Service(clone, env, log)
        say("$ make run   (in the background" + (", again)" if round_ == 2 else ")"))
        service.start()
        try:
            play(clone, env, service, round_)
        except FirstRunError as exc:
            raise FirstRunError(f"{exc}\n--- make run, last lines ---\n{service.tail()}") from None
        finally:
            service.kill()
        if round_ == 2 and "pip install" in service.log():
            raise FirstRunError("the second `make run` installed again: " + service.tail(10))
    say("restart: nothing reinstalled, yesterday's person got today's broadcast")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="herald-first-run-") as tmp:
        try:
            first_run(Path(tmp))
        except (FirstRunError, subprocess.SubprocessError, OSError) as exc:
            print(f"FIRST RUN FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    say("PASSED: a fresh clone's `make run` and the README's quick start work")
    return 0


if __name__ == "__main__":
    sys.exit(main())
