"""python-telegram-bot's HTTP layer on aiohttp instead of httpx.

The conversation handlers answer every update through the Bot API; PTB's default httpx transport
costs several times more CPU per request than aiohttp on this workload (bench/updates.py), and
aiohttp is already the project's HTTP stack. Same contract as ``HTTPXRequest``: form-encoded
parameters, multipart when files are attached, ``TimedOut`` and ``NetworkError`` on failures.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from telegram._utils.defaultvalue import DefaultValue  # PTB exposes no public name for it
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

ODVFloat = DefaultValue[float] | float | DefaultValue[None] | None


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        *,
        pool_size: int = 64,
        read_timeout: float | None = 15.0,
        write_timeout: float | None = 15.0,
        connect_timeout: float | None = 10.0,
        media_write_timeout: float | None = 60.0,
        on_status: Callable[[int], None] | None = None,
    ) -> None:
        self._pool_size = pool_size
        self._on_status = on_status  # sees each answer's HTTP status (polling health)
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVFloat = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVFloat = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVFloat = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVFloat = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        has_files = request_data is not None and request_data.contains_files
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        write = write_timeout
        if isinstance(write, DefaultValue):
            write = self._media_write_timeout if has_files else self._write_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        # aiohttp has no separate write timeout: the whole request gets read + write.
        total = None if read is None or write is None else read + write
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=connect)
        try:
            async with self._session.request(
                method,
                url,
                data=_body(request_data),
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
            ) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # The URL carries the bot token: name the error, not the request.
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from None
        if self._on_status is not None:
            self._on_status(response.status)
        return response.status, body


def _body(request_data: RequestData | None) -> aiohttp.FormData | dict[str, str] | None:
    if request_data is None:
        return None
    parameters = request_data.json_parameters
    if not request_data.contains_files:
        return parameters
    form = aiohttp.FormData(quote_fields=False)
    for name, value in parameters.items():
        form.add_field(name, value)
    for name, (file_name, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=file_name, content_type=mime_type)
    return form
