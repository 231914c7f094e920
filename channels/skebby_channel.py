"""The SMS channel over Skebby: one ``POST sms`` per batch of recipients sharing the same text.

- The batch's ``order_id`` is the dispatcher's ``batch_key`` (persisted on the rows before the
  call), so a batch whose answer was lost is first looked up with ``GET sms/{order_id}``
  (:meth:`SkebbyChannel.probe`) instead of being sent twice.
- Acceptance is not delivery: every accepted recipient becomes ``UNKNOWN`` with the order id as
  ``provider_id``; the delivery-report job (:mod:`channels.sms_reports`) settles it later.
- ``sent_number`` is the billable units of one recipient: the text's SMS fragments (GSM-7 or
  UCS-2, chosen per text by :func:`channels.sms_text.analyse_sms`).
- Failures become results, never exceptions: 5xx, 429, timeouts and connection errors retry the
  whole batch; a 400 fails it with Skebby's details, or marks the recipients Skebby names as
  invalid and retries the rest. Refused credentials (a 401 even after the gateway's one renewal)
  are a misconfiguration, not the recipients' fault: the batch waits (``RETRY`` that does not
  count as an attempt, paused :data:`AUTH_PAUSE_SECONDS`) until someone fixes the settings, so
  no delivery is lost or burnt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from channels import rich_text
from channels.base import Delivery, DeliveryResult, Outcome, OutgoingMessage
from channels.personalise import MissingDataError, Renderer
from channels.skebby_gateway import (
    MessageType,
    OrderState,
    OrderStatus,
    SkebbyAuthenticationError,
    SkebbyBadRequestError,
    SkebbyException,
    SkebbyGateway,
)
from channels.sms_text import analyse_sms

logger = logging.getLogger(__name__)

AUTH_PAUSE_SECONDS = 300.0
DELIVERED_STATES = frozenset({OrderState.DLVRD, OrderState.SENT})
PENDING_STATES = frozenset({OrderState.WAITING, OrderState.WAIT4DLVR, OrderState.SCHEDULED})
# Recipients Skebby refused before sending: not billed.
_UNBILLED_STATES = frozenset({OrderState.INVALIDDST, OrderState.BLACKLISTED})
_DIGITS = re.compile(r"\D")
# A personalised SMS goes as ``POST paramsms`` with this message: each recipient's text, rendered
# by Herald (channels.personalise), is their one parameter.
PARAMETER = "text"
PARAMETRIC_MESSAGE = "${text}"


def outcome_of_state(state: OrderState) -> Outcome:
    """DLVRD/SENT delivered; WAITING/WAIT4DLVR/SCHEDULED not yet known; anything else failed."""
    if state in DELIVERED_STATES:
        return Outcome.SUCCESS
    if state in PENDING_STATES:
        return Outcome.UNKNOWN
    return Outcome.FAILED


def sms_text(message: OutgoingMessage) -> str:
    """What an SMS says: the body without formatting (links written out as ``label (url)``),
    then the buttons' addresses, one a line."""
    fmt, buttons = rich_text.content_of(message.extra)
    if fmt is rich_text.Format.TEXT and not buttons:
        return message.body
    return rich_text.plain_text(message.body, fmt, buttons)


def same_number(a: str, b: str) -> bool:
    """Skebby may spell a number differently (``+39…`` / ``39…``); compare the digits."""
    return _DIGITS.sub("", a) == _DIGITS.sub("", b)


class SkebbyChannel:
    """The ``Channel`` named ``"sms"``; batches of up to ``batch_size`` recipients per order."""

    name = "sms"
    sandboxed = False

    def __init__(
        self,
        gateway: SkebbyGateway,
        *,
        message_type: MessageType | str,
        sender: str | None,
        max_fragments: int,
        truncate: bool,
        batch_size: int,
    ) -> None:
        self.message_type = MessageType(message_type)
        if sender and self.message_type is MessageType.SI:
            raise ValueError("Skebby message type SI (Basic) does not allow a custom sender")
        if batch_size < 1 or max_fragments < 1:
            raise ValueError("batch_size and max_fragments must be at least 1")
        self.gateway = gateway
        self.sender = sender or None
        self.max_fragments = max_fragments
        self.truncate = truncate
        self.max_batch = batch_size
        self.orders_sent = 0  # accepted POST sms (the benchmark reports it)
        self._renderer = Renderer()

    # --- Channel protocol -------------------------------------------------------------------

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        if not deliveries:
            return []
        order_id = deliveries[0].batch_key
        if order_id is None or any(d.batch_key != order_id for d in deliveries):
            return DeliveryResult.for_all(
                deliveries, Outcome.RETRY, detail="internal error: batch without one order id"
            )
        if any(d.params is not None for d in deliveries):
            return await self._send_personal(message, deliveries, order_id)
        try:
            text = sms_text(message)
        except rich_text.MarkupError as exc:
            return DeliveryResult.for_all(
                deliveries, Outcome.FAILED, detail=f"invalid markup: {exc}"
            )
        analysis = analyse_sms(text, max_fragments=self.max_fragments)
        if analysis.fragments == 0:
            return DeliveryResult.for_all(deliveries, Outcome.FAILED, detail="empty SMS text")
        if not analysis.fits and not self.truncate:
            return DeliveryResult.for_all(
                deliveries,
                Outcome.FAILED,
                detail=f"the text needs {analysis.fragments} SMS fragments "
                f"({analysis.encoding}); the limit is {self.max_fragments}",
            )
        units = min(analysis.fragments, self.max_fragments)
        try:
            result = await self.gateway.send_sms(
                text,
                [d.address for d in deliveries],
                message_type=self.message_type,
                sender=self.sender,
                order_id=order_id,
                encoding=analysis.encoding,
                max_fragments=self.max_fragments,
                truncate=self.truncate,
                return_credits=True,
            )
        except SkebbyException as exc:
            return self._failure(deliveries, exc)
        self.orders_sent += 1
        if result.total_sent != units * len(deliveries):
            logger.info(
                "Skebby order %s billed %d credits, expected %d x %d",
                order_id,
                result.total_sent,
                units,
                len(deliveries),
            )
        detail = f"accepted by Skebby ({units} {analysis.encoding} fragment(s)); awaiting report"
        return DeliveryResult.for_all(
            deliveries, Outcome.UNKNOWN, detail=detail, provider_id=order_id, sent_number=units
        )

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        """Ask Skebby for the batch's order: None when it never got it (safe to resend)."""
        order_id = deliveries[0].batch_key if deliveries else None
        if order_id is None:
            return None
        try:
            status = await self.gateway.probe_order(order_id)
        except SkebbyException as exc:
            # We cannot tell whether it was accepted: resending could double it, so wait.
            return self._failure(deliveries, exc, probing=True)
        if status is None:
            logger.info("Skebby never accepted order %s: sending it again", order_id)
            return None
        logger.info("Skebby had accepted order %s before the answer was lost", order_id)
        if any(d.params is not None for d in deliveries):
            return [self._probed(d, status, self._personal_units(message, d)) for d in deliveries]
        analysis = analyse_sms(sms_text(message), max_fragments=self.max_fragments)
        units = min(analysis.fragments, self.max_fragments)
        return [self._probed(d, status, units) for d in deliveries]

    # --- personalised SMS ---------------------------------------------------------------------

    def personal_text(self, message: OutgoingMessage, delivery: Delivery) -> str:
        """A personalised broadcast's SMS text for one recipient (values as they are)."""
        fmt, buttons = rich_text.content_of(message.extra)
        return self._renderer.sms(message.body, fmt, buttons, delivery.params or {})

    def batch_group(self, message: OutgoingMessage, delivery: Delivery) -> str | None:
        """One parametric order has one encoding: the dispatcher batches by it."""
        if delivery.params is None:
            return None
        try:
            text = self.personal_text(message, delivery)
        except (MissingDataError, rich_text.MarkupError):
            return "unrenderable"
        return analyse_sms(text, max_fragments=self.max_fragments).encoding

    def _personal_units(self, message: OutgoingMessage, delivery: Delivery) -> int:
        try:
            text = self.personal_text(message, delivery)
        except (MissingDataError, rich_text.MarkupError):
            return 0
        analysis = analyse_sms(text, max_fragments=self.max_fragments)
        return min(analysis.fragments, self.max_fragments)

    async def _send_personal(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery], order_id: str
    ) -> list[DeliveryResult]:
        """``POST paramsms``: each recipient's rendered text as its ``${text}`` parameter, in
        one order with one encoding (UCS-2 if any text needs it); each is billed its own
        fragments."""
        failed: dict[int, DeliveryResult] = {}
        texts: dict[int, str] = {}
        units: dict[int, int] = {}
        encodings: set[str] = set()
        for d in deliveries:
            try:
                text = self.personal_text(message, d)
            except (MissingDataError, rich_text.MarkupError) as exc:
                failed[d.id] = DeliveryResult(d.id, Outcome.FAILED, f"not personalised: {exc}")
                continue
            analysis = analyse_sms(text, max_fragments=self.max_fragments)
            if analysis.fragments == 0:
                failed[d.id] = DeliveryResult(d.id, Outcome.FAILED, "empty SMS text")
            elif not analysis.fits and not self.truncate:
                failed[d.id] = DeliveryResult(
                    d.id,
                    Outcome.FAILED,
                    f"the text needs {analysis.fragments} SMS fragments "
                    f"({analysis.encoding}); the limit is {self.max_fragments}",
                )
            else:
                texts[d.id] = text
                units[d.id] = min(analysis.fragments, self.max_fragments)
                encodings.add(analysis.encoding)
        sending = [d for d in deliveries if d.id in texts]
        if not sending:
            return [failed[d.id] for d in deliveries]
        encoding = "ucs2" if "ucs2" in encodings else "gsm"
        if len(encodings) > 1:  # the dispatcher groups by encoding; a rescued batch may mix
            units = {d.id: min(_ucs2_fragments(texts[d.id]), self.max_fragments) for d in sending}
        try:
            result = await self.gateway.send_parametric_sms(
                PARAMETRIC_MESSAGE,
                {d.address: {PARAMETER: texts[d.id]} for d in sending},
                message_type=self.message_type,
                sender=self.sender,
                order_id=order_id,
                encoding=encoding,
                max_fragments=self.max_fragments,
                truncate=self.truncate,
                return_credits=True,
            )
        except SkebbyException as exc:
            refused = {r.delivery_id: r for r in self._failure(sending, exc)}
            return [failed.get(d.id) or refused[d.id] for d in deliveries]
        self.orders_sent += 1
        expected = sum(units.values())
        if result.total_sent != expected:
            logger.info(
                "Skebby parametric order %s billed %d credits, expected %d",
                order_id,
                result.total_sent,
                expected,
            )
        return [
            failed.get(d.id)
            or DeliveryResult(
                d.id,
                Outcome.UNKNOWN,
                detail=f"accepted by Skebby ({units[d.id]} {encoding} fragment(s), "
                "personalised); awaiting report",
                provider_id=order_id,
                sent_number=units[d.id],
            )
            for d in deliveries
        ]

    async def close(self) -> None:
        await self.gateway.close()

    # --- mapping ------------------------------------------------------------------------------

    @staticmethod
    def _probed(delivery: Delivery, status: OrderStatus, units: int) -> DeliveryResult:
        state = next(
            (r.status for r in status.recipients if same_number(r.destination, delivery.address)),
            None,
        )
        if state is None:
            return DeliveryResult(
                delivery.id,
                Outcome.FAILED,
                detail=f"Skebby order {status.order_id} does not list this number",
            )
        outcome = outcome_of_state(state)
        return DeliveryResult(
            delivery.id,
            outcome,
            detail=f"Skebby: {state.value}",
            provider_id=status.order_id,
            sent_number=0 if state in _UNBILLED_STATES else units,
        )

    def _failure(
        self, deliveries: Sequence[Delivery], exc: SkebbyException, *, probing: bool = False
    ) -> list[DeliveryResult]:
        if isinstance(exc, SkebbyAuthenticationError):
            logger.error("Skebby refused the credentials; SMS wait until they are fixed")
            return DeliveryResult.for_all(
                deliveries,
                Outcome.RETRY,
                detail="Skebby refused the credentials (check SKEBBY_USERNAME/SKEBBY_PASSWORD); "
                "waiting, not sent",
                retry_after=AUTH_PAUSE_SECONDS,
                counts_as_attempt=False,
            )
        if exc.transient or probing:
            what = "order lookup" if probing else "send"
            return DeliveryResult.for_all(
                deliveries,
                Outcome.RETRY,
                detail=f"Skebby {what} failed: {exc}",
                provider_failed=exc.transient,
            )
        if isinstance(exc, SkebbyBadRequestError):
            return self._bad_request(deliveries, exc)
        return DeliveryResult.for_all(deliveries, Outcome.FAILED, detail=f"Skebby: {exc}")

    @staticmethod
    def _bad_request(
        deliveries: Sequence[Delivery], exc: SkebbyBadRequestError
    ) -> list[DeliveryResult]:
        """A 400 naming some of our numbers marks those invalid; the others try again at once
        (without losing an attempt). Any other 400 fails the batch with Skebby's details."""
        text = _error_text(exc.details)
        named = {d.id for d in deliveries if _mentions(text, d.address)}
        if not named:
            return DeliveryResult.for_all(
                deliveries, Outcome.FAILED, detail=f"Skebby refused the SMS: {text}"
            )
        return [
            DeliveryResult(d.id, Outcome.INVALID, detail=f"Skebby refused the number: {text}")
            if d.id in named
            else DeliveryResult(
                d.id,
                Outcome.RETRY,
                detail="another number of the batch was refused",
                retry_after=0.0,
                counts_as_attempt=False,
            )
            for d in deliveries
        ]


def _ucs2_fragments(text: str) -> int:
    """The fragments of ``text`` sent as UCS-2 (70 units alone, 67 per fragment otherwise)."""
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _error_text(details: Any) -> str:
    """Skebby's reason: the ``error``/``message`` field of a JSON body, else the body."""
    if isinstance(details, dict):
        for key in ("error", "message", "detail"):
            if isinstance(details.get(key), str):
                return str(details[key])
    return details if isinstance(details, str) else str(details)


def _mentions(text: str, address: str) -> bool:
    digits = _DIGITS.sub("", address)
    return bool(digits) and (address in text or digits in _DIGITS.sub(" ", text).split())
