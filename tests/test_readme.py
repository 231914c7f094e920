"""The README's commands are real: every `herald` line parses as written, the quick start CI runs
is the README's own block, and the CSV columns it lists are the ones the import accepts."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
from pathlib import Path
from types import ModuleType

from admin_api.recipient_input import CSV_COLUMNS
from bot import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _first_run_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("first_run", ROOT / ".ci" / "first_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shell_commands(text: str) -> list[list[str]]:
    """Each command of the README's ```sh blocks, continuation lines joined, as argv."""
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            pending += line + "\n"
            try:
                argv = shlex.split(pending, comments=True)
            except ValueError:  # a quoted argument goes on to the next line
                continue
            pending = ""
            if argv:
                commands.append(argv)
        assert not pending, pending
    return commands


def test_every_herald_command_in_the_readme_parses_as_written() -> None:
    """Pasted after `make run`, each `.venv/bin/herald ...` line is a valid command line."""
    commands = _shell_commands(README.read_text(encoding="utf-8"))
    herald = [argv for argv in commands if argv[0] in (".venv/bin/herald", "herald")]
    assert len(herald) >= 3
    assert all(argv[0] == ".venv/bin/herald" for argv in herald), "use .venv/bin/herald"
    parser = cli.build_parser()
    for argv in herald:
        parser.parse_args(argv[1:])  # argparse exits on anything it cannot read
    makes = {argv[1] for argv in commands if argv[0] == "make"}
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert makes <= targets, makes - targets


def _as_the_platform_runs_it(command: str, **env: str) -> list[str]:
    """The argv a Heroku-style platform's shell makes of a Procfile command."""
    script = f'set -- {command}; printf "%s\\n" "$@"'
    path = {"PATH": os.environ["PATH"]}
    done = subprocess.run(  # noqa: S603 - our own Procfile
        ["bash", "-c", script],  # noqa: S607
        env={**path, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_the_procfile_runs_herald_commands_that_parse() -> None:
    """The release, web and worker processes are valid commands; web binds every interface
    unless HTTP_HOST says otherwise, takes the platform's PORT and does everything; the worker
    only delivers."""
    procfile = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    processes = dict(line.split(": ", 1) for line in procfile if line.strip())
    assert set(processes) == {"release", "web", "worker"}
    parser = cli.build_parser()
    for command in processes.values():
        argv = _as_the_platform_runs_it(command)
        assert argv[0] == "herald"
        parser.parse_args(argv[1:])
    web = parser.parse_args(_as_the_platform_runs_it(processes["web"])[1:])
    assert (web.command, web.host, web.port, web.role) == ("run", "0.0.0.0", None, "all")  # noqa: S104
    worker = parser.parse_args(_as_the_platform_runs_it(processes["worker"])[1:])
    assert (worker.command, worker.role) == ("run", "worker")
    chosen = _as_the_platform_runs_it(processes["web"], HTTP_HOST="10.1.2.3")
    assert parser.parse_args(chosen[1:]).host == "10.1.2.3"


def test_the_first_run_check_plays_the_readme_quick_start() -> None:
    """CI's first-run script takes its commands from the README's marked block."""
    commands = _first_run_script().quick_start_commands(README)
    assert [shlex.split(c, comments=True)[:3] for c in commands] == [
        [".venv/bin/herald", "recipients", "add"],
        ["make", "chat"],
        [".venv/bin/herald", "broadcast", "--channel"],
    ]
    broadcast = shlex.split(commands[2])
    assert broadcast[broadcast.index("--to") + 1] == "customer:1"  # the recipient just added
    assert "--wait" in broadcast


def test_the_readme_lists_the_csv_columns_the_import_accepts() -> None:
    """The README's column table is the import's own list, in the same order."""
    text = README.read_text(encoding="utf-8").split("<!-- csv-columns:", 1)[1]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*?) \|$", text, flags=re.M)
    assert rows[: len(CSV_COLUMNS)] == list(CSV_COLUMNS.items())
