"""The email channel: one MIME message per recipient over a small pool of SMTP connections.

Not named ``email.py``: that would shadow the standard library package this module uses.

- Every recipient gets their own message with only their address in ``To`` (the list of
  recipients is never exposed), plain text plus HTML, and the real attachments (not links).
- The Message-ID is derived from the message and delivery ids, so a retry after a timeout or a
  crash carries the same Message-ID and mail systems can recognise the duplicate.
- Connections are reused: a broadcast of thousands of emails opens ``connection_pool_size``
  connections, renewed every ``messages_per_connection`` messages (servers cap messages per
  session) and whenever the server has closed one.
- Provider failures become results, never exceptions: a refused recipient is ``INVALID``, another
  5xx ``FAILED``, and 4xx, timeouts and network errors ``RETRY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import aiosmtplib

from channels import rich_text
from channels.base import (
    Delivery,
    DeliveryResult,
    Outcome,
    OutgoingMessage,
    StoredAttachment,
)
from channels.composition import OWN_KIND
from channels.personalise import Renderer
from channels.unsubscribe import UnsubscribeLinks

logger = logging.getLogger(__name__)

SANDBOX_DETAIL = "sandbox: email not sent, SMTP is not configured"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool  # upgrade a plain connection (port 587); required, never silently skipped
    ssl: bool  # TLS from the first byte (port 465)
    timeout: float  # seconds, for connecting and for every SMTP command
    sender: str  # the From header, e.g. "Herald <herald@example.com>"
    connection_pool_size: int = 4
    messages_per_connection: int = 100

    def __post_init__(self) -> None:
        if self.starttls and self.ssl:
            raise ValueError("choose STARTTLS or SSL, not both")
        if self.connection_pool_size < 1 or self.messages_per_connection < 1:
            raise ValueError("the connection pool and messages per connection must be >= 1")
        if "@" not in self.sender_address:
            raise ValueError(f"the sender {self.sender!r} has no email address")

    @property
    def sender_address(self) -> str:
        """The bare address of ``sender``: the envelope sender and the Message-ID domain."""
        return parseaddr(self.sender)[1]


def message_id_for(message_id: int, delivery_id: int, sender: str) -> str:
    """The stable Message-ID of one delivery: the same on every attempt."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "herald.invalid"
    return f"<herald.{message_id}.{delivery_id}@{domain}>"


def text_to_html(subject: str, body: str) -> str:
    """A minimal HTML document showing the text body as written (escaped, line breaks kept)."""
    lines = html.escape(body.replace("\r\n", "\n")).replace("\n", "<br>\n")
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(subject)}</title>\n</head>\n"
        f"<body>\n<p>{lines}</p>\n</body>\n</html>\n"
    )


def with_footer_link(document: str, url: str, label: str) -> str:
    """``document`` with a small unsubscribe paragraph at the end of its body."""
    footer = (
        '<p style="font-size:small;color:#666">'
        f'<a href="{html.escape(url)}">{html.escape(label)}</a></p>\n'
    )
    position = document.lower().rfind("</body>")
    if position == -1:
        return document + footer
    return document[:position] + footer + document[position:]


class AttachmentError(Exception):
    """A stored attachment is missing or no longer matches its recorded checksum."""


def _read_attachment(attachment: StoredAttachment, root: Path | None) -> bytes:
    path = attachment.path
    if root is not None and not path.is_absolute():
        path = root / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"attachment {attachment.file_name!r} unreadable: {exc}") from exc
    # Sending a file that changed since it was stored would send something nobody approved.
    if hashlib.sha256(data).hexdigest() != attachment.sha256:
        raise AttachmentError(f"attachment {attachment.file_name!r} changed since it was stored")
    return data


@dataclass
class _Slot:
    """A permit to use the server; holds a connection once one has been opened."""

    client: aiosmtplib.SMTP | None = None
    sent: int = 0  # messages sent over ``client``


class EmailChannel:
    """The ``Channel`` for email over SMTP; ``config=None`` is the sandbox: nothing is sent."""

    name = "email"
    max_batch = 1

    def __init__(
        self,
        config: SmtpConfig | None,
        *,
        attachments_root: Path | None = None,
        unsubscribe: UnsubscribeLinks | None = None,
    ) -> None:
        self.config = config
        # With links: every email carries List-Unsubscribe (RFC 8058) and a visible footer link.
        self.unsubscribe = unsubscribe
        self.sandboxed = config is None
        self.connections_opened = 0  # SMTP sessions opened so far (the benchmark reports it)
        self._attachments_root = attachments_root
        size = config.connection_pool_size if config else 1
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(_Slot())
        self._closed = False
        # The attachments of the message being broadcast, read once for all its recipients.
        self._attachment_cache: tuple[tuple[StoredAttachment, ...], list[bytes]] | None = None

    # --- Channel protocol -------------------------------------------------------------------

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        if self.config is None:
            logger.info("email sandbox: %d delivery(ies) recorded, not sent", len(deliveries))
            return DeliveryResult.for_all(deliveries, Outcome.SUCCESS, detail=SANDBOX_DETAIL)
        try:
            attachments = await self._attachments(message)
        except AttachmentError as exc:
            return DeliveryResult.for_all(deliveries, Outcome.FAILED, detail=str(exc))
        return [await self._send_one(self.config, message, d, attachments) for d in deliveries]

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        # SMTP keeps no queryable record of what it accepted; the stable Message-ID is our
        # protection against a resend after a crash.
        return None

    async def close(self) -> None:
        """Say QUIT on every idle connection; busy ones are closed when they come back."""
        self._closed = True
        for _ in range(self._slots.qsize()):
            slot = self._slots.get_nowait()
            try:
                await self._quit(slot)
            finally:
                self._slots.put_nowait(slot)

    # --- building the message ------------------------------------------------------------------

    async def _attachments(self, message: OutgoingMessage) -> list[bytes]:
        if not message.attachments:
            return []
        cached = self._attachment_cache
        if cached is not None and cached[0] == message.attachments:
            return cached[1]
        root = self._attachments_root
        # File reads off the event loop: attachments may be megabytes.
        data = await asyncio.to_thread(
            lambda: [_read_attachment(a, root) for a in message.attachments]
        )
        self._attachment_cache = (message.attachments, data)
        return data

    @staticmethod
    def build(
        config: SmtpConfig,
        message: OutgoingMessage,
        delivery: Delivery,
        attachments: Sequence[bytes] = (),
        unsubscribe: UnsubscribeLinks | None = None,
    ) -> EmailMessage:
        """The MIME message for one delivery (public so previews can show the real thing)."""
        url = (
            unsubscribe.url(delivery.recipient_kind, delivery.recipient_id, "email")
            if unsubscribe is not None and delivery.recipient_kind != OWN_KIND
            else None
        )
        mail = EmailMessage()
        mail["From"] = config.sender
        mail["To"] = delivery.address
        personal = delivery.params is not None
        fmt, buttons = rich_text.content_of(message.extra)
        if delivery.params is not None:
            subject, text, body_html = Renderer().email(
                message.subject,
                message.body,
                message.body_html,
                fmt,
                buttons,
                delivery.params,
                text_to_html,
            )
        else:
            subject = message.subject
        mail["Subject"] = subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id_for(message.id, delivery.id, config.sender)
        # RFC 3834: tells vacation responders not to answer a notification.
        mail["Auto-Submitted"] = "auto-generated"
        # A Markdown or HTML body (and any buttons) makes both parts: the HTML with its
        # formatting and the buttons as links, the text with each link's address written out.
        if personal:
            pass  # rendered above, per recipient
        elif fmt is rich_text.Format.TEXT and not buttons:
            text, body_html = message.body, text_to_html(message.subject, message.body)
        else:
            text = rich_text.plain_text(message.body, fmt, buttons)
            body_html = rich_text.email_html(message.subject, message.body, fmt, buttons)
        if not personal:
            body_html = message.body_html or body_html
        if url is not None and unsubscribe is not None:
            # RFC 2369 and RFC 8058: mail clients offer "unsubscribe", a POST needs no page.
            mail["List-Unsubscribe"] = f"<{url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            text = f"{text}\n\n-- \n{unsubscribe.footer_text.format(url=url)}\n"
            body_html = with_footer_link(body_html, url, unsubscribe.footer_link)
        mail.set_content(text)
        mail.add_alternative(body_html, subtype="html")
        for attachment, data in zip(message.attachments, attachments, strict=True):
            maintype, _, subtype = attachment.content_type.partition("/")
            if not maintype or not subtype:
                maintype, subtype = "application", "octet-stream"
            mail.add_attachment(
                data, maintype=maintype, subtype=subtype, filename=attachment.file_name
            )
        return mail

    # --- sending ------------------------------------------------------------------------------

    async def _send_one(
        self,
        config: SmtpConfig,
        message: OutgoingMessage,
        delivery: Delivery,
        attachments: Sequence[bytes],
    ) -> DeliveryResult:
        try:
            mail = self.build(config, message, delivery, attachments, self.unsubscribe)
        except ValueError as exc:  # e.g. a line break in the address or subject
            return DeliveryResult(delivery.id, Outcome.FAILED, detail=f"cannot build email: {exc}")
        message_id = str(mail["Message-ID"])
        slot = await self._slots.get()
        keep = False
        try:
            result = await self._transmit(config, slot, mail, delivery)
            # After a refused recipient aiosmtplib has reset the envelope: the session is sound.
            keep = result.outcome in {Outcome.SUCCESS, Outcome.INVALID}
            if result.outcome is Outcome.SUCCESS:
                return DeliveryResult(
                    delivery.id, Outcome.SUCCESS, provider_id=message_id, sent_number=1
                )
            return result
        except Exception as exc:  # the edge: a bug must not kill the dispatcher
            logger.exception("email delivery %d: unexpected error", delivery.id)
            return DeliveryResult(delivery.id, Outcome.RETRY, detail=f"unexpected error: {exc!r}")
        finally:
            # A failed or cancelled exchange leaves the session in an unknown state: drop it.
            if not keep or self._closed:
                self._drop(slot)
            self._slots.put_nowait(slot)

    async def _transmit(
        self, config: SmtpConfig, slot: _Slot, mail: EmailMessage, delivery: Delivery
    ) -> DeliveryResult:
        recipients = [delivery.address]
        try:
            client, reused = await self._connection(config, slot)
            try:
                await client.send_message(mail, sender=config.sender_address, recipients=recipients)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server dropped an idle pooled session (timeouts, per-session limits):
                # that says nothing about this delivery, so open a fresh session and try again.
                self._drop(slot)
                client, _ = await self._connection(config, slot)
                await client.send_message(mail, sender=config.sender_address, recipients=recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            return _response_result(delivery, refusal.code, refusal.message, recipient=True)
        except aiosmtplib.SMTPResponseException as exc:  # includes a refused login
            return _response_result(delivery, exc.code, exc.message, recipient=False)
        except (ConnectionError, TimeoutError, OSError) as exc:
            # Disconnections, timeouts, refused connections: the server may be back later.
            return DeliveryResult(
                delivery.id, Outcome.RETRY, detail=f"SMTP unavailable: {exc}", provider_failed=True
            )
        except aiosmtplib.SMTPException as exc:
            # The server lacks what the settings require (STARTTLS, AUTH, SMTPUTF8). Never
            # downgrade to plain text or anonymous sending; someone must fix the configuration.
            return DeliveryResult(delivery.id, Outcome.FAILED, detail=f"SMTP: {exc}")
        except ValueError as exc:  # aiosmtplib refuses an address it cannot send safely
            return DeliveryResult(delivery.id, Outcome.INVALID, detail=f"unusable address: {exc}")
        slot.sent += 1
        return DeliveryResult(delivery.id, Outcome.SUCCESS)

    async def _connection(self, config: SmtpConfig, slot: _Slot) -> tuple[aiosmtplib.SMTP, bool]:
        """The slot's session and whether it was reused; (re)opened when missing, closed by the
        server, or used up."""
        client = slot.client
        if client is not None and client.is_connected:
            if slot.sent < config.messages_per_connection:
                return client, True
            await self._quit(slot)
        self._drop(slot)
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.ssl,
            # False, not None: None would let aiosmtplib upgrade opportunistically and then
            # fail on a server certificate nobody asked us to check.
            start_tls=config.starttls,
            timeout=config.timeout,
        )
        await client.connect()
        slot.client, slot.sent = client, 0
        self.connections_opened += 1
        if config.username:
            await client.login(config.username, config.password or "")
        return client, False

    def _drop(self, slot: _Slot) -> None:
        if slot.client is not None:
            slot.client.close()
        slot.client, slot.sent = None, 0

    async def _quit(self, slot: _Slot) -> None:
        client = slot.client
        if client is not None and client.is_connected:
            # QUIT is a courtesy; a server that is already gone changes nothing.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()
        self._drop(slot)


def _response_result(
    delivery: Delivery, code: int, reply: str, *, recipient: bool
) -> DeliveryResult:
    """Map an SMTP reply code: 4xx try again, 5xx on RCPT the address, other 5xx permanent."""
    detail = f"{code} {reply}".strip()
    if 400 <= code < 500:
        # 421: the server is shutting down or overloaded, which is not this recipient's doing.
        return DeliveryResult(
            delivery.id,
            Outcome.RETRY,
            detail=f"SMTP temporary error: {detail}",
            provider_failed=code == 421,
        )
    if recipient:
        return DeliveryResult(delivery.id, Outcome.INVALID, detail=f"recipient refused: {detail}")
    return DeliveryResult(delivery.id, Outcome.FAILED, detail=f"SMTP refused: {detail}")
