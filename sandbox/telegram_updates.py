"""Update delivery of the Telegram simulator: the getUpdates queue and the webhook.

Updates wait in a queue until the bot confirms them with ``offset`` (long polling wakes on an
``asyncio.Condition``), or, while a webhook is set, are POSTed to it in order per chat by one
background task per chat with pending updates.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp

from sandbox.telegram_models import (
    DEFAULT_ALLOWED_UPDATES,
    JSON,
    ApiError,
    Params,
    WebhookDelivery,
    bad_request,
)

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(slots=True)
class Described:
    """A successful result that carries a ``description`` too (setWebhook, deleteWebhook)."""

    result: Any
    description: str


class UpdateQueue:
    """Holds updates for getUpdates or pushes them to the webhook."""

    def __init__(self, closing: asyncio.Event, online: asyncio.Event | None = None) -> None:
        self.deliveries: list[WebhookDelivery] = []
        self.http: aiohttp.ClientSession | None = None
        self._closing = closing
        self._online = online  # cleared during an outage: webhook deliveries wait
        self._pending: deque[tuple[int | None, JSON]] = deque()
        self._allowed = DEFAULT_ALLOWED_UPDATES
        self._poll_generation = 0
        self._url: str | None = None
        self._secret: str | None = None
        self._max_connections = 40
        self._last_error: tuple[int, str] | None = None
        self._queues: dict[int | None, deque[JSON]] = {}
        self._workers: dict[int | None, asyncio.Task[None]] = {}
        self._updates_cond = asyncio.Condition()
        self._deliveries_cond = asyncio.Condition()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def webhook_url(self) -> str | None:
        return self._url

    def reset(self) -> None:
        self._pending.clear()
        self.deliveries.clear()

    async def stop(self) -> None:
        for condition in (self._updates_cond, self._deliveries_cond):
            async with condition:
                condition.notify_all()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def emit(self, kind: str, payload: JSON, chat_key: int | None, update_id: int) -> int:
        """Hand a new update to the webhook or the getUpdates queue (unless filtered out)."""
        if kind not in self._allowed:
            logger.debug("update %d (%s) dropped by allowed_updates", update_id, kind)
            return update_id
        update: JSON = {"update_id": update_id, kind: payload}
        if self._url is not None:
            self._queue_webhook(chat_key, update)
            return update_id
        self._pending.append((chat_key, update))
        async with self._updates_cond:
            self._updates_cond.notify_all()
        return update_id

    def _set_allowed(self, allowed: Any) -> None:
        if allowed is None:  # not given: keep the previous setting, like Telegram
            return
        if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
            raise bad_request("can't parse allowed_updates JSON array")
        self._allowed = frozenset(allowed) if allowed else DEFAULT_ALLOWED_UPDATES

    # ------------------------------------------------------------------ getUpdates

    async def get_updates(self, params: Params) -> list[JSON]:
        if self._url is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.int_("offset") or 0
        limit = min(max(params.int_("limit") or 100, 1), 100)
        timeout = max(params.int_("timeout") or 0, 0)
        self._set_allowed(params.json_("allowed_updates"))
        pending = self._pending
        if offset < 0:
            while len(pending) > -offset:
                pending.popleft()
        else:  # confirm everything below offset
            while pending and pending[0][1]["update_id"] < offset:
                pending.popleft()
        self._poll_generation += 1
        generation = self._poll_generation
        async with self._updates_cond:
            self._updates_cond.notify_all()  # an older long poll is terminated with 409
            if not pending and timeout > 0:
                try:
                    async with asyncio.timeout(timeout):
                        await self._updates_cond.wait_for(
                            lambda: (
                                bool(pending)
                                or generation != self._poll_generation
                                or self._url is not None
                                or self._closing.is_set()
                            )
                        )
                except TimeoutError:
                    pass
        if generation != self._poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        if self._url is not None:
            return []
        return [update for _, update in itertools.islice(pending, limit)]

    # ------------------------------------------------------------------ webhook methods

    async def set_webhook(self, params: Params) -> Described:
        url = (params.str_("url") or "").strip()
        if not url:  # Telegram treats an empty url as deleteWebhook
            return await self.delete_webhook(params)
        if not url.startswith(("http://", "https://")):  # real Telegram demands https
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.str_("secret_token") or None
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = params.int_("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        self._set_allowed(params.json_("allowed_updates"))
        if params.bool_("drop_pending_updates"):
            self._drop_pending()
        unchanged = self._url == url and self._secret == secret
        self._url, self._secret, self._max_connections = url, secret, max_connections
        self._last_error = None
        while self._pending:  # updates waiting for getUpdates now go to the webhook
            chat_key, update = self._pending.popleft()
            self._queue_webhook(chat_key, update)
        async with self._updates_cond:
            self._updates_cond.notify_all()
        return Described(True, "Webhook is already set" if unchanged else "Webhook was set")

    def _drop_pending(self) -> None:
        self._pending.clear()
        for queue in self._queues.values():
            queue.clear()

    async def delete_webhook(self, params: Params) -> Described:
        if params.bool_("drop_pending_updates"):
            self._drop_pending()
        if self._url is None:
            return Described(True, "Webhook is already deleted")
        self._url = self._secret = None
        undelivered = [
            (chat_key, update) for chat_key, queue in self._queues.items() for update in queue
        ]
        self._queues.clear()  # back to getUpdates, in update order
        self._pending.extend(sorted(undelivered, key=lambda item: int(item[1]["update_id"])))
        return Described(True, "Webhook was deleted")

    async def webhook_info(self, params: Params) -> JSON:
        queued = sum(len(queue) for queue in self._queues.values())
        info: JSON = {
            "url": self._url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending) + queued,
        }
        if self._url is not None:
            info["max_connections"] = self._max_connections
            info["allowed_updates"] = sorted(self._allowed)
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        return info

    # ------------------------------------------------------------------ webhook delivery

    def _queue_webhook(self, chat_key: int | None, update: JSON) -> None:
        self._queues.setdefault(chat_key, deque()).append(update)
        if chat_key not in self._workers:
            self._workers[chat_key] = asyncio.create_task(self._worker(chat_key))

    async def _worker(self, chat_key: int | None) -> None:
        """Deliver one chat's updates in order; exits when that chat's queue is empty."""
        try:
            while True:
                if self._online is not None:
                    await self._online.wait()  # an outage holds deliveries back, in order
                queue = self._queues.get(chat_key)
                if not queue:
                    break
                update = queue.popleft()
                if not queue:
                    del self._queues[chat_key]
                await self._post(chat_key, update)
        finally:
            self._workers.pop(chat_key, None)

    async def _post(self, chat_key: int | None, update: JSON) -> None:
        url, secret, http = self._url, self._secret, self.http
        if url is None or http is None:
            return
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SECRET_HEADER] = secret
        status: int | None = None
        error: str | None = None
        try:
            async with http.post(url, data=json.dumps(update), headers=headers) as response:
                status = response.status
                await response.read()
                if not 200 <= status < 300:
                    error = f"Wrong response from the webhook: {status} {response.reason}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"Connection failed: {type(exc).__name__}"
        update_id = int(update["update_id"])
        if error is not None:
            self._last_error = (int(time.time()), error)
            logger.warning("webhook delivery of update %d failed: %s", update_id, error)
        self.deliveries.append(WebhookDelivery(update_id, chat_key, status, error))
        async with self._deliveries_cond:
            self._deliveries_cond.notify_all()

    async def wait_for_deliveries(
        self,
        count: int,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper with a default deadline
    ) -> list[WebhookDelivery]:
        async with self._deliveries_cond:
            try:
                async with asyncio.timeout(timeout):
                    await self._deliveries_cond.wait_for(
                        lambda: len(self.deliveries) >= count or self._closing.is_set()
                    )
            except TimeoutError:
                raise TimeoutError(
                    f"expected {count} webhook deliveries within {timeout}s, "
                    f"got {len(self.deliveries)}"
                ) from None
        return list(self.deliveries)
