"""The in-app inbox ("storage"): delivering is recording; readers mark messages read later."""

from __future__ import annotations

from collections.abc import Sequence

from channels.base import Delivery, DeliveryResult, Outcome, OutgoingMessage


class StorageChannel:
    name = "storage"
    max_batch = 500
    sandboxed = False

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        return DeliveryResult.for_all(
            deliveries, Outcome.SUCCESS, detail="stored in the in-app inbox", sent_number=1
        )

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        return None  # recording again is harmless: the row is the inbox entry

    async def close(self) -> None:
        return None


class SandboxChannel:
    """A channel with no credentials configured: records the delivery, sends nothing."""

    max_batch = 500
    sandboxed = True

    def __init__(self, name: str, missing: str) -> None:
        self.name = name
        self._detail = f"sandbox: nothing left the machine ({missing} not configured)"

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        return DeliveryResult.for_all(deliveries, Outcome.SUCCESS, detail=self._detail)

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        return None

    async def close(self) -> None:
        return None
