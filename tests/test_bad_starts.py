"""Every bad start is one line: the real ``herald`` in a subprocess, with a wrong configuration,
a database that is missing, unreachable or not migrated, a Bot API that refuses the token or
does not answer, a taken port. Each must exit non-zero with exactly one line on stderr that
names the variable or the cause, without a traceback and without a secret."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from sandbox.telegram_simulator import TelegramSimulator
from tests.conftest import POSTGRES_ADMIN_URL
from tests.conftest import _migrate as migrate

WRONG_TOKEN = "4747:wrong-secret-part-of-the-token"  # the simulator knows another one
WRONG_SECRET = WRONG_TOKEN.partition(":")[2]
SECRETS = (WRONG_TOKEN, WRONG_SECRET, WRONG_TOKEN.replace(":", "%3A"), "hunter2-db-password")
# A bare environment: nothing from the developer's shell or a .env file leaks in.
BASE_ENV = {"PATH": "/usr/bin:/bin", "PORT": "0", "TELEGRAM_SANDBOX_PORT": "0"}


@dataclass(frozen=True)
class BadStart:
    name: str
    env: dict[str, str]
    names: str  # what the line must mention: the variable or the cause
    command: tuple[str, ...] = ("run",)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Every command that touches the database (all on SQLite, a few again on PostgreSQL).
DATABASE_COMMANDS = (
    ("run",),
    ("create-api-key", "alice"),
    ("broadcast", "--channel", "storage", "--to", "customer:1", "--body", "hi"),
    ("recipients", "add", "--name", "Ada", "--phone", "+393331234567"),
    ("recipients", "import", "{csv}"),
    ("messages", "show", "1"),
)

CONFIGURATIONS = [
    BadStart("port-not-a-number", {"PORT": "http"}, "PORT"),
    BadStart("port-out-of-range", {"PORT": "70000"}, "PORT"),
    BadStart("unknown-database", {"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
    BadStart("database-url-bad-port", {"DATABASE_URL": "postgresql://h:abc/x"}, "DATABASE_URL"),
    BadStart("postgres-url-no-database", {"DATABASE_URL": "postgresql://h"}, "DATABASE_URL"),
    BadStart("log-level", {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    BadStart("telegram-mode", {"TELEGRAM_MODE": "pigeon"}, "TELEGRAM_MODE"),
    BadStart(
        "webhook-without-url",
        {"TELEGRAM_MODE": "webhook", "TELEGRAM_BOT_TOKEN": WRONG_TOKEN},
        "TELEGRAM_WEBHOOK_URL",
    ),
    BadStart(
        "webhook-without-secret",
        {
            "TELEGRAM_MODE": "webhook",
            "TELEGRAM_BOT_TOKEN": WRONG_TOKEN,
            "TELEGRAM_WEBHOOK_URL": "https://herald.example.org/hook",
        },
        "TELEGRAM_WEBHOOK_SECRET",
    ),
    BadStart("webhook-url-not-a-url", {"TELEGRAM_WEBHOOK_URL": "herald"}, "TELEGRAM_WEBHOOK_URL"),
    BadStart("api-base-url", {"TELEGRAM_API_BASE_URL": "ftp://x/bot"}, "TELEGRAM_API_BASE_URL"),
    BadStart("malformed-token", {"TELEGRAM_BOT_TOKEN": "not a token"}, "TELEGRAM_BOT_TOKEN"),
    BadStart("rate-zero", {"TELEGRAM_RATE_PER_SECOND": "0"}, "TELEGRAM_RATE_PER_SECOND"),
    BadStart("lease-infinite", {"DISPATCH_LEASE_SECONDS": "inf"}, "DISPATCH_LEASE_SECONDS"),
    BadStart("batch-size", {"DISPATCH_BATCH_SIZE": "0"}, "DISPATCH_BATCH_SIZE"),
    BadStart("smtp-port", {"SMTP_PORT": "99999"}, "SMTP_PORT"),
    BadStart("request-bytes", {"MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES"),
    BadStart("negative-cost", {"COST_SMS": "-1"}, "COST_SMS"),
    BadStart("phone-region", {"DEFAULT_PHONE_REGION": "XX"}, "DEFAULT_PHONE_REGION"),
    BadStart("skebby-without-password", {"SKEBBY_USERNAME": "me"}, "SKEBBY_PASSWORD"),
    BadStart("skebby-url", {"SKEBBY_BASE_URL": "skebby"}, "SKEBBY_BASE_URL"),
    BadStart("data-dir-is-a-file", {"DATA_DIR": "{file}"}, "DATA_DIR"),
    BadStart("sqlite-dir-is-a-file", {"DATABASE_URL": "sqlite:///{file}/x.db"}, "DATABASE_URL"),
    BadStart("http-host-unknown", {"HTTP_HOST": "no-such-host.invalid"}, "HTTP_HOST"),
    BadStart("port-taken", {"PORT": "{taken}"}, "PORT"),
    BadStart(
        "sandbox-port-taken",
        {"TELEGRAM_SANDBOX_PORT": "{taken}"},
        "TELEGRAM_SANDBOX_PORT",
    ),
    BadStart(
        "postgres-unreachable",
        {"DATABASE_URL": "postgresql://postgres:hunter2-db-password@127.0.0.1:{closed}/x"},
        "unreachable",
    ),
    BadStart(
        "postgres-database-missing",
        {"DATABASE_URL": "{pg_missing}"},
        "does not exist",
    ),
    *(
        BadStart(
            f"{backend}-unmigrated-{'-'.join(command[: 2 if command[0] == 'recipients' else 1])}",
            {"DATABASE_URL": "{" + backend + "_empty}"},
            "herald db upgrade",
            command=command,
        )
        for backend, commands in (
            ("sqlite", DATABASE_COMMANDS),
            ("postgres", DATABASE_COMMANDS[:3]),
        )
        for command in commands
    ),
    BadStart(
        "token-refused",
        {"TELEGRAM_BOT_TOKEN": WRONG_TOKEN, "TELEGRAM_API_BASE_URL": "{sim}"},
        "TELEGRAM_BOT_TOKEN",
    ),
    BadStart(
        "webhook-info-token-refused",
        {"TELEGRAM_BOT_TOKEN": WRONG_TOKEN, "TELEGRAM_API_BASE_URL": "{sim}"},
        "TELEGRAM_BOT_TOKEN",
        command=("webhook", "info"),
    ),
    BadStart(
        "bot-api-unreachable",
        {
            "TELEGRAM_BOT_TOKEN": WRONG_TOKEN,
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:{closed}/bot",
        },
        "TELEGRAM_API_BASE_URL",
    ),
]


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def _empty_postgres() -> AsyncIterator[str]:
    name = f"herald_empty_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield str(make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False))
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture
async def resources(tmp_path: Path, taken_port: int) -> AsyncIterator[dict[str, str]]:
    """What the configurations refer to: files, ports, a simulator, empty databases."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    csv = tmp_path / "people.csv"
    csv.write_text("name\nAda\n")
    (tmp_path / "empty.db").touch()
    migrated = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
    await migrate(migrated)
    values = {
        "migrated": migrated,
        "file": str(a_file),
        "csv": str(csv),
        "taken": str(taken_port),
        "closed": str(_free_port()),
        "sqlite_empty": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        "pg_missing": str(
            make_url(POSTGRES_ADMIN_URL)
            .set(database=f"herald_missing_{uuid.uuid4().hex[:8]}")
            .render_as_string(False)
        ),
    }
    async with TelegramSimulator(token="4747:the-token-the-simulator-knows") as sim:
        values["sim"] = sim.base_url
        async for url in _empty_postgres():
            values["postgres_empty"] = url
            yield values


async def _herald(command: tuple[str, ...], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *command,
        cwd=cwd,
        env={**BASE_ENV, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_there_are_at_least_twenty_bad_configurations() -> None:
    """The table covers the start-up failures an operator meets (at least twenty of them)."""
    assert len(CONFIGURATIONS) >= 20
    assert len({c.name for c in CONFIGURATIONS}) == len(CONFIGURATIONS)


async def test_every_bad_start_is_one_line_naming_the_cause(
    resources: dict[str, str], tmp_path: Path
) -> None:
    """Non-zero exit, exactly one stderr line naming the variable or cause, no traceback, no
    secret (the token, its secret part, URL-encoded, the database password) anywhere."""
    limit = asyncio.Semaphore(2 * (os.cpu_count() or 2))  # mostly waiting on imports

    async def attempt(case: BadStart) -> tuple[BadStart, int, str, str]:
        env = {k: v.format(**resources) for k, v in case.env.items()}
        command = tuple(part.format(**resources) for part in case.command)
        workdir = tmp_path / case.name
        workdir.mkdir()
        env.setdefault("DATA_DIR", str(workdir / "data"))
        if "DATABASE_URL" not in env:
            # A copy each: a case that gets past the database claims it (SQLite runs one Herald
            # process), and the cases run side by side.
            own = workdir / "migrated.db"
            shutil.copyfile(make_url(resources["migrated"]).database or "", own)
            env["DATABASE_URL"] = f"sqlite+aiosqlite:///{own}"
        async with limit:
            return (case, *await _herald(command, env, workdir))

    results = await asyncio.gather(*(attempt(case) for case in CONFIGURATIONS))
    problems = []
    for case, code, out, err in results:
        lines = err.splitlines()
        everything = out + err
        if (
            code == 0
            or len(lines) != 1
            or case.names not in err
            or "Traceback" in everything
            or any(secret in everything for secret in SECRETS)
        ):
            problems.append(f"{case.name}: exit {code}\nstdout: {out!r}\nstderr: {err!r}")
    assert not problems, "\n\n".join(problems)
