"""A lean Bot API client for broadcasting: three methods over one aiohttp connection pool.

The conversation handlers use python-telegram-bot; the broadcast channel talks to the Bot API
directly because it sends thousands of messages a second and needs none of PTB's object model
(PTB's HTTP layer tops out at a few hundred sends per second on this hardware: see
bench/broadcast.py). The token is part of every URL, so no URL ever reaches an error message.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp


class BotApiError(Exception):
    """Telegram answered ``ok: false``."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters or {}

    @property
    def retry_after(self) -> float | None:
        value = self.parameters.get("retry_after")
        return float(value) if value is not None else None

    @property
    def migrate_to_chat_id(self) -> int | None:
        value = self.parameters.get("migrate_to_chat_id")
        return int(value) if value is not None else None


class BotApiUnavailableError(Exception):
    """No answer from Telegram: connection refused or reset, a timeout, a non-JSON reply."""


class BotApiClient:
    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        pool_size: int = 64,
        timeout: float = 15.0,
    ) -> None:
        self._prefix = f"{base_url}{token}/"
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, data: dict[str, Any] | aiohttp.FormData) -> Any:
        try:
            kwargs: dict[str, Any] = (
                {"data": data} if isinstance(data, aiohttp.FormData) else {"json": data}
            )
            async with self._http().post(self._prefix + method, **kwargs) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # str(exc) may carry the URL, and the URL carries the token: name the error only.
            raise BotApiUnavailableError(f"{method}: {type(exc).__name__}") from None
        try:
            payload = json.loads(body)
        except ValueError:
            raise BotApiUnavailableError(f"{method}: HTTP {status} without a JSON body") from None
        if isinstance(payload, dict) and payload.get("ok"):
            return payload.get("result")
        if not isinstance(payload, dict):
            raise BotApiUnavailableError(f"{method}: HTTP {status} with an unexpected body")
        raise BotApiError(
            int(payload.get("error_code") or status),
            str(payload.get("description") or f"HTTP {status}"),
            payload.get("parameters") if isinstance(payload.get("parameters"), dict) else None,
        )

    async def get_me(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("getMe", {})
        return result

    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None,
        paid: bool = False,
        reply_markup: dict[str, Any] | None = None,
    ) -> int:
        data: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            data["parse_mode"] = parse_mode
        if reply_markup is not None:
            data["reply_markup"] = reply_markup
        if paid:
            data["allow_paid_broadcast"] = True
        result = await self.call("sendMessage", data)
        return int(result["message_id"])

    async def delete_message(self, chat_id: int, message_id: int) -> None:
        await self.call("deleteMessage", {"chat_id": chat_id, "message_id": message_id})

    async def send_file(
        self,
        chat_id: int,
        path: Path,
        *,
        as_photo: bool,
        file_name: str,
        content_type: str,
        paid: bool = False,
        reply_markup: dict[str, Any] | None = None,
    ) -> int:
        method, field = ("sendPhoto", "photo") if as_photo else ("sendDocument", "document")
        form = aiohttp.FormData(quote_fields=False)  # names are sanitized ASCII already
        form.add_field("chat_id", str(chat_id))
        if paid:
            form.add_field("allow_paid_broadcast", "true")
        if reply_markup is not None:
            form.add_field("reply_markup", json.dumps(reply_markup))
        content = await asyncio.to_thread(path.read_bytes)
        form.add_field(field, content, filename=file_name, content_type=content_type)
        result = await self.call(method, form)
        return int(result["message_id"])
