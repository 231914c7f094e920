"""Logging for the service, with every secret (the bot token above all) redacted everywhere.

httpx and python-telegram-bot log request URLs, and the bot token is part of every Telegram URL,
so the redaction sits on the root handlers and rewrites the fully formatted line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[REDACTED]"


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._pattern = _secrets_pattern(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return self._pattern.sub(REDACTED, line) if self._pattern else line


def _secrets_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    # A secret may also appear URL-encoded (the bot token's ":" as "%3A" in a quoted URL).
    variants = {v for s in secrets if len(s) >= 4 for v in (s, quote(s, safe=""))}
    # Longest first so a secret containing another is replaced whole.
    values = sorted(variants, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def install_redaction(secrets: Iterable[str], fmt: str | None = None) -> None:
    """Make every handler on the root logger redact ``secrets``."""
    fmt = fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s"
    values = list(secrets)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(fmt, values))


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    logging.basicConfig(level=level, force=True)
    install_redaction(secrets)
    # httpx logs every request URL at INFO; with a token in it that is noise even when redacted.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
