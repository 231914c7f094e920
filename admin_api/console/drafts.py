"""What a "check" page hands to its "confirm" button: a composed message with its files, or a
parsed CSV file, kept in memory for a while under a random id that only its user can use.

The confirm form carries the id, never the content, so a check page stays small whatever the
attachments; the id also makes the send's idempotency key, so a double click or a reload of the
confirm sends once. A draft lives ``ttl`` seconds and at most ``capacity`` are kept (the oldest
go first). A restart forgets them: the person is asked to check again.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MonotonicClock = Callable[[], float]


@dataclass(frozen=True)
class Draft:
    id: str
    user_id: int
    kind: str
    payload: Any
    created: float


class DraftStore:
    def __init__(
        self, *, ttl: float, capacity: int, clock: MonotonicClock = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._drafts: OrderedDict[str, Draft] = OrderedDict()

    def put(self, user_id: int, kind: str, payload: Any) -> str:
        self._expire()
        draft_id = secrets.token_urlsafe(18)
        self._drafts[draft_id] = Draft(draft_id, user_id, kind, payload, self._clock())
        while len(self._drafts) > self._capacity:
            self._drafts.popitem(last=False)
        return draft_id

    def get(self, user_id: int, kind: str, draft_id: str) -> Any | None:
        """The payload, if the draft exists, is ``kind`` and belongs to ``user_id``."""
        self._expire()
        draft = self._drafts.get(draft_id)
        if draft is None or draft.user_id != user_id or draft.kind != kind:
            return None
        return draft.payload

    def drop(self, draft_id: str) -> None:
        self._drafts.pop(draft_id, None)

    def _expire(self) -> None:
        limit = self._clock() - self._ttl
        while self._drafts:
            oldest = next(iter(self._drafts.values()))
            if oldest.created > limit:
                return
            self._drafts.popitem(last=False)
