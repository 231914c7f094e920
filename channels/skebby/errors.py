"""Errors of the Skebby client. ``transient`` tells the dispatcher whether retrying may help."""

from __future__ import annotations

import json
from typing import Any


class SkebbyException(Exception):
    """A Skebby call failed. ``status`` is the HTTP status (None when no answer came)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed (5xx, 429, timeouts, connection errors)."""
        return self.status is not None and (self.status >= 500 or self.status == 429)


class SkebbyAuthenticationError(SkebbyException):
    """Skebby refused the credentials or the session (401): permanent until reconfigured."""


class SkebbyBadRequestError(SkebbyException):
    """Skebby rejected the request (400); ``details`` holds the parsed body when it is JSON."""

    @property
    def details(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body


class SkebbyNotFoundError(SkebbyException):
    """The addressed object (order, contact, ...) does not exist (404)."""


class SkebbyServerError(SkebbyException):
    """Skebby answered 5xx."""


class SkebbyTimeoutError(SkebbyException):
    @property
    def transient(self) -> bool:
        return True


class SkebbyConnectionError(SkebbyException):
    """No usable answer: refused connection, dropped connection, DNS failure..."""

    @property
    def transient(self) -> bool:
        return True
