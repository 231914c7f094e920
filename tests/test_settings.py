"""Configuration: every variable is documented, and a wrong value is one clear line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import ConfigurationError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_documents_every_setting() -> None:
    """.env.example lists every variable Herald reads, and nothing it does not."""
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": "http"}, "PORT: "),
        ({"database_url": "mysql://x"}, "DATABASE_URL: must be a sqlite:// or postgresql:// URL"),
        ({"log_level": "loud"}, "LOG_LEVEL: must be one of"),
        (
            {"telegram_mode": "webhook", "telegram_bot_token": "1:x"},
            "TELEGRAM_WEBHOOK_URL: required when TELEGRAM_MODE=webhook",
        ),
        ({"skebby_username": "me"}, "SKEBBY_PASSWORD: required"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(overrides: dict[str, str], message: str) -> None:
    """A wrong value stops start-up with a single line that names the variable."""
    with pytest.raises(ConfigurationError) as error:
        load_settings(**overrides)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_cli_reports_bad_configuration_without_a_traceback(tmp_path: Path) -> None:
    """`herald run` with PORT=abc prints one error line naming PORT and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env={"PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("herald: configuration error: PORT:")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_empty_values_from_a_copied_env_example_mean_unset() -> None:
    """`TELEGRAM_BOT_TOKEN=` and friends, left empty, keep sandbox mode instead of failing."""
    settings = load_settings(
        _env_file=None, telegram_bot_token="", smtp_host=" ", skebby_username=""
    )
    assert settings.sandbox
    assert settings.smtp_host is None and settings.skebby_username is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("secret_key", "too-short", "SECRET_KEY: must be at least 32 characters"),
        ("console_timezone", "Mars/Olympus", "CONSOLE_TIMEZONE: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_console_settings_are_checked(name: str, value: str, message: str) -> None:
    """A short SECRET_KEY or an unknown time zone stops start-up with one line naming it."""
    with pytest.raises(ConfigurationError) as refused:
        load_settings(_env_file=None, **{name: value})
    assert str(refused.value).startswith(message)
