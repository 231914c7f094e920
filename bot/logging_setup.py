"""Logging for the service, with every secret (the bot token above all) redacted everywhere.

httpx and python-telegram-bot log request URLs, and the bot token is part of every Telegram URL,
so the redaction sits on the root handlers and rewrites the fully formatted line. The same
:class:`Redactor` cleans everything else Herald prints (CLI errors, ``herald webhook info``,
the chat client), so a secret has no way out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[REDACTED]"


class Redactor:
    """Replaces every secret in a text: each secret whole, the bot token's secret part (after
    the colon: the bot id before it is public), and their URL-encoded forms."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._pattern = _secrets_pattern(secrets)

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def _secrets_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    parts = {p for s in secrets for p in (s, s.partition(":")[2]) if len(p) >= 4}
    # A secret may also appear URL-encoded (the bot token's ":" as "%3A" in a quoted URL).
    variants = {v for p in parts for v in (p, quote(p, safe=""), quote(p))}
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
