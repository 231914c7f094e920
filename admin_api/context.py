"""What the admin API needs from the composition root, handed over through ``web.AppKey``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from persistence.database import SessionFactory


@dataclass
class ApiContext:
    sessions: SessionFactory
    max_request_bytes: int


API_CONTEXT = web.AppKey("api_context", ApiContext)
