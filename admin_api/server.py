"""Serving the app: aiohttp's runner, with JSON answers for requests too malformed to route.

aiohttp parses the request line and headers before any middleware runs; when that fails (a
request line or a header over the limit, a byte that is not allowed) it logs an ERROR with a
traceback and answers in plain text. aiohttp has no hook for this (aio-libs/aiohttp#3287), so
:class:`ApiRunner` gives its server a request handler whose ``handle_error`` answers such a
request in the API's one error shape (414 for a request line over the limit, 431 for a header,
400 otherwise) and logs it at DEBUG: a client's mistake is not a server error.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from admin_api.errors import error_body

log = logging.getLogger(__name__)

# Distinct limits, so that a LineTooLong says which one it hit (aiohttp reports only the limit).
MAX_REQUEST_LINE = 8192
MAX_HEADER_FIELD = 8190


def malformed_request_answer(exc: HttpProcessingError) -> tuple[int, str, str]:
    """Status, code and message for a request aiohttp could not parse."""
    if isinstance(exc, LineTooLong):
        if str(exc.args[1]) == str(MAX_REQUEST_LINE):
            return 414, "uri_too_long", f"the request line is longer than {MAX_REQUEST_LINE} bytes"
        return (
            431,
            "headers_too_large",
            f"a request header is longer than {MAX_HEADER_FIELD} bytes",
        )
    return 400, "bad_request", "the request is not valid HTTP/1.1"


class _JsonErrorRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        status, code, text = malformed_request_answer(exc)
        log.debug("refused a malformed request from %s: %s", request.remote, exc)
        response = web.Response(
            status=status,
            body=json.dumps(error_body(code, text)).encode(),
            content_type="application/json",
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparsable requests with JSON errors."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_REQUEST_LINE)
        kwargs.setdefault("max_field_size", MAX_HEADER_FIELD)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server (startup signals, freezing); only the handler class changes.
        server.__class__ = _Server
        return server
