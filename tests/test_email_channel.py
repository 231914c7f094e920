"""The email channel against a real SMTP server (aiosmtpd) on loopback, in the test's own loop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from channels.base import Channel, Delivery, Outcome, OutgoingMessage, StoredAttachment
from channels.smtp_channel import SANDBOX_DETAIL, EmailChannel, SmtpConfig, message_id_for

SENDER = "Herald <herald@example.org>"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: bytes | None

    @property
    def mail(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    """Records every DATA; replies can be scripted per recipient or per DATA command."""

    received: list[Received] = field(default_factory=list)  # accepted messages
    attempts: list[Received] = field(default_factory=list)  # every DATA, accepted or not
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    quits: int = 0
    hold: asyncio.Event | None = None  # when set, DATA waits for it (to test cancellation)
    in_data: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        auth = session.auth_data
        login = auth.login if isinstance(auth, LoginPassword) and session.authenticated else None
        record = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login)
        self.attempts.append(record)
        if self.hold is not None:
            self.in_data.set()
            await self.hold.wait()
        reply = self.data_replies.pop(0) if self.data_replies else "250 Message accepted"
        if reply.startswith("250"):
            self.received.append(record)
        async with self.changed:
            self.changed.notify_all()
        return reply

    async def handle_QUIT(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    async def wait_for(self, count: int) -> list[Received]:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.received) >= count)
        return self.received


@dataclass
class Server:
    handler: Handler
    port: int
    protocols: list[SMTP]

    @property
    def connections(self) -> int:
        return len(self.protocols)

    def drop_connections(self) -> None:
        """The server hangs up on every client, as an idle timeout would."""
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.close()

    def config(self, **overrides: Any) -> SmtpConfig:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": None,
            "password": None,
            "starttls": False,
            "ssl": False,
            "timeout": 5.0,
            "sender": SENDER,
        }
        settings.update(overrides)
        return SmtpConfig(**settings)


def _authenticator(
    server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"herald", b"s3cret")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Starts aiosmtpd servers on 127.0.0.1, port 0, in this loop; stops them afterwards."""
    loop = asyncio.get_running_loop()
    servers: list[tuple[asyncio.Server, Server]] = []

    async def start(*, auth: bool = False) -> Server:
        handler = Handler()
        protocols: list[SMTP] = []

        def factory() -> SMTP:
            protocol = SMTP(
                handler,
                hostname="smtp.test",
                authenticator=_authenticator if auth else None,
                auth_require_tls=False,  # loopback test server without certificates
                loop=loop,
            )
            protocols.append(protocol)
            return protocol

        listener = await loop.create_server(factory, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        server = Server(handler, port, protocols)
        servers.append((listener, server))
        return server

    yield start
    for listener, server in servers:
        listener.close()
        server.drop_connections()
        await listener.wait_closed()
        tasks = [p._handler_coroutine for p in server.protocols if p._handler_coroutine]
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    return await start_server()


@pytest.fixture
async def channels() -> AsyncIterator[list[EmailChannel]]:
    """Channels created by a test; closed at the end so no connection outlives it."""
    created: list[EmailChannel] = []
    yield created
    for channel in created:
        await channel.close()


def make_channel(created: list[EmailChannel], config: SmtpConfig | None, **kw: Any) -> EmailChannel:
    channel = EmailChannel(config, **kw)
    created.append(channel)
    return channel


def message(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "id": 42,
        "channel": "email",
        "subject": "Scadenza fattura — €",
        "body": "Gentile cliente,\nla fattura <b>n. 7</b> & altro è in scadenza.",
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


def delivery(ident: int, address: str, attempts: int = 1) -> Delivery:
    return Delivery(
        id=ident,
        message_id=42,
        recipient_kind="customer",
        recipient_id=ident,
        address=address,
        attempts=attempts,
    )


def stored(path: Path, content_type: str, name: str | None = None) -> StoredAttachment:
    data = path.read_bytes()
    return StoredAttachment(
        file_name=name or path.name,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        path=path,
    )


# --- tests ------------------------------------------------------------------------------------


async def test_each_recipient_gets_their_own_message(
    server: Server, channels: list[EmailChannel]
) -> None:
    """Three recipients receive three emails, each seeing only their own address."""
    channel = make_channel(channels, server.config())
    assert isinstance(channel, Channel)
    addresses = ["anna@example.com", "bruno@example.com", "carla@example.com"]
    results = await channel.send(message(), [delivery(i, a) for i, a in enumerate(addresses, 1)])
    assert [r.outcome for r in results] == [Outcome.SUCCESS] * 3
    assert [r.sent_number for r in results] == [1, 1, 1]
    received = await server.handler.wait_for(3)
    for item, address in zip(received, addresses, strict=True):
        assert item.rcpt_tos == [address]
        assert item.mail_from == "herald@example.org"
        mail = item.mail
        assert mail["To"] == address
        assert mail["Cc"] is None and mail["Bcc"] is None
        assert mail["From"] == SENDER
        assert mail["Date"] is not None
        assert mail["Subject"] == "Scadenza fattura — €"


async def test_text_and_html_parts(server: Server, channels: list[EmailChannel]) -> None:
    """The email has a plain-text part and an HTML part showing the text safely escaped."""
    channel = make_channel(channels, server.config())
    await channel.send(message(), [delivery(1, "anna@example.com")])
    mail = (await server.handler.wait_for(1))[0].mail
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n").rstrip("\n") == message().body
    html_content = html.get_content()
    assert "la fattura &lt;b&gt;n. 7&lt;/b&gt; &amp; altro è" in html_content
    assert "Gentile cliente,<br>" in html_content
    assert "<b>" not in html_content


async def test_given_html_body_is_used(server: Server, channels: list[EmailChannel]) -> None:
    """An HTML body provided by the sender is sent as is, next to the plain text."""
    channel = make_channel(channels, server.config())
    await channel.send(message(body_html="<h1>Ciao</h1>"), [delivery(1, "a@example.com")])
    mail = (await server.handler.wait_for(1))[0].mail
    html = mail.get_body(("html",))
    assert html is not None
    assert html.get_content().strip() == "<h1>Ciao</h1>"


async def test_attachments_arrive_byte_identical(
    server: Server, channels: list[EmailChannel], tmp_path: Path
) -> None:
    """Attachments are the real files, byte for byte, with their names and content types."""
    picture = tmp_path / "photo.png"
    picture.write_bytes(os.urandom(200_000))
    (tmp_path / "files").mkdir()
    report = tmp_path / "files" / "stored-report"
    report.write_bytes(b"%PDF-1.7\n" + os.urandom(5_000))
    attachments = (
        stored(picture, "image/png"),
        # A path relative to the attachments root, as the store records it.
        StoredAttachment(
            file_name="Report 2024.pdf",
            content_type="application/pdf",
            size=report.stat().st_size,
            sha256=hashlib.sha256(report.read_bytes()).hexdigest(),
            path=Path("files/stored-report"),
        ),
    )
    channel = make_channel(channels, server.config(), attachments_root=tmp_path)
    msg = message(attachments=attachments)
    # One send per delivery, as the dispatcher calls it (the files are read once, then cached).
    for ident, address in [(1, "a@example.com"), (2, "b@example.com")]:
        [result] = await channel.send(msg, [delivery(ident, address)])
        assert result.outcome is Outcome.SUCCESS
    for item in await server.handler.wait_for(2):
        mail = item.mail
        assert mail.get_content_type() == "multipart/mixed"
        assert mail.get_body(("plain",)) is not None
        parts = list(mail.iter_attachments())
        assert [p.get_filename() for p in parts] == ["photo.png", "Report 2024.pdf"]
        assert [p.get_content_type() for p in parts] == ["image/png", "application/pdf"]
        for part, attachment in zip(parts, attachments, strict=True):
            data = part.get_content()
            assert isinstance(data, bytes)
            assert hashlib.sha256(data).hexdigest() == attachment.sha256


async def test_changed_attachment_is_not_sent(
    server: Server, channels: list[EmailChannel], tmp_path: Path
) -> None:
    """A file altered after it was stored fails the delivery instead of sending other content."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"approved")
    attachment = stored(path, "text/plain")
    path.write_bytes(b"tampered")
    channel = make_channel(channels, server.config())
    [result] = await channel.send(message(attachments=(attachment,)), [delivery(1, "a@x.com")])
    assert result.outcome is Outcome.FAILED
    assert "changed since it was stored" in result.detail
    assert server.handler.attempts == []


async def test_missing_attachment_fails(
    server: Server, channels: list[EmailChannel], tmp_path: Path
) -> None:
    """A stored file that disappeared fails the delivery with its name, nothing half-sent."""
    path = tmp_path / "gone.pdf"
    path.write_bytes(b"soon gone")
    attachment = stored(path, "application/pdf")
    path.unlink()
    channel = make_channel(channels, server.config())
    [result] = await channel.send(message(attachments=(attachment,)), [delivery(1, "a@x.com")])
    assert result.outcome is Outcome.FAILED
    assert "'gone.pdf' unreadable" in result.detail
    assert server.handler.attempts == []


async def test_header_injection_is_refused(server: Server, channels: list[EmailChannel]) -> None:
    """An address smuggling a Bcc line is refused instead of mailing someone else."""
    channel = make_channel(channels, server.config())
    sneaky = "a@example.com\r\nBcc: victim@example.com"
    [result] = await channel.send(message(), [delivery(1, sneaky)])
    assert result.outcome is Outcome.FAILED
    assert server.handler.attempts == []


async def test_message_id_is_stable_across_a_retry(
    server: Server, channels: list[EmailChannel]
) -> None:
    """A retried email carries the same Message-ID, so mail systems can spot the repeat."""
    server.handler.data_replies.append("451 4.3.0 Try again later")
    channel = make_channel(channels, server.config())
    [first] = await channel.send(message(), [delivery(7, "a@example.com", attempts=1)])
    assert first.outcome is Outcome.RETRY
    assert "451" in first.detail
    [second] = await channel.send(message(), [delivery(7, "a@example.com", attempts=2)])
    assert second.outcome is Outcome.SUCCESS
    expected = message_id_for(42, 7, SENDER)
    assert expected == "<herald.42.7@example.org>"
    assert second.provider_id == expected
    ids = [attempt.mail["Message-ID"] for attempt in server.handler.attempts]
    assert ids == [expected, expected]


async def test_connections_are_reused(server: Server, channels: list[EmailChannel]) -> None:
    """Twenty concurrent emails travel over at most two SMTP connections (the pool size)."""
    channel = make_channel(channels, server.config(connection_pool_size=2))
    sends = [channel.send(message(), [delivery(i, f"user{i}@example.com")]) for i in range(20)]
    results = [r for batch in await asyncio.gather(*sends) for r in batch]
    assert all(r.outcome is Outcome.SUCCESS for r in results)
    received = await server.handler.wait_for(20)
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(
        f"user{i}@example.com" for i in range(20)
    )
    assert channel.connections_opened <= 2
    assert server.connections == channel.connections_opened


async def test_connection_renewed_after_messages_per_connection(
    server: Server, channels: list[EmailChannel]
) -> None:
    """A connection is replaced after its message quota, politely (QUIT)."""
    config = server.config(connection_pool_size=1, messages_per_connection=5)
    channel = make_channel(channels, config)
    for i in range(12):
        [result] = await channel.send(message(), [delivery(i, f"u{i}@example.com")])
        assert result.outcome is Outcome.SUCCESS
    assert channel.connections_opened == 3
    assert server.handler.quits == 2


async def test_reconnects_when_the_server_hangs_up(
    server: Server, channels: list[EmailChannel]
) -> None:
    """After the server closes an idle connection, the next email still goes out."""
    channel = make_channel(channels, server.config(connection_pool_size=1))
    [first] = await channel.send(message(), [delivery(1, "a@example.com")])
    server.drop_connections()
    [second] = await channel.send(message(), [delivery(2, "b@example.com")])
    assert (first.outcome, second.outcome) == (Outcome.SUCCESS, Outcome.SUCCESS)
    assert len(await server.handler.wait_for(2)) == 2
    assert channel.connections_opened == 2


async def test_unknown_recipient_is_invalid(server: Server, channels: list[EmailChannel]) -> None:
    """A mailbox the server refuses (550) is reported invalid with the server's words."""
    server.handler.rcpt_replies["ghost@example.com"] = "550 5.1.1 User unknown"
    channel = make_channel(channels, server.config(connection_pool_size=1))
    [refused] = await channel.send(message(), [delivery(1, "ghost@example.com")])
    assert refused.outcome is Outcome.INVALID
    assert "550" in refused.detail and "User unknown" in refused.detail
    [ok] = await channel.send(message(), [delivery(2, "real@example.com")])
    assert ok.outcome is Outcome.SUCCESS
    assert channel.connections_opened == 1  # a refused recipient does not cost the connection


async def test_temporary_recipient_refusal_is_retried(
    server: Server, channels: list[EmailChannel]
) -> None:
    """A greylisting 451 on the recipient means try again later."""
    server.handler.rcpt_replies["grey@example.com"] = "451 4.7.1 Greylisted, come back later"
    channel = make_channel(channels, server.config())
    [result] = await channel.send(message(), [delivery(1, "grey@example.com")])
    assert result.outcome is Outcome.RETRY
    assert "Greylisted" in result.detail


async def test_permanent_data_refusal_fails(server: Server, channels: list[EmailChannel]) -> None:
    """A 554 on the message content is a permanent failure, not retried."""
    server.handler.data_replies.append("554 5.6.0 Message rejected as spam")
    channel = make_channel(channels, server.config())
    [result] = await channel.send(message(), [delivery(1, "a@example.com")])
    assert result.outcome is Outcome.FAILED
    assert "554" in result.detail


async def test_server_down_is_retried(channels: list[EmailChannel]) -> None:
    """With the mail server unreachable, deliveries wait for a retry instead of failing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    config = SmtpConfig("127.0.0.1", port, None, None, False, False, 2.0, SENDER)
    channel = make_channel(channels, config)
    [result] = await channel.send(message(), [delivery(1, "a@example.com")])
    assert result.outcome is Outcome.RETRY
    assert channel.connections_opened == 0


async def test_silent_server_times_out_and_is_retried(channels: list[EmailChannel]) -> None:
    """A server that accepts but never answers costs one timeout, then a retry later."""
    writers: list[asyncio.StreamWriter] = []

    def accept_and_stay_silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    silent = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    async with silent:
        port = silent.sockets[0].getsockname()[1]
        config = SmtpConfig("127.0.0.1", port, None, None, False, False, 0.2, SENDER)
        channel = make_channel(channels, config)
        [result] = await channel.send(message(), [delivery(1, "a@example.com")])
        for writer in writers:
            writer.close()
            await writer.wait_closed()
    assert result.outcome is Outcome.RETRY


async def test_login_with_credentials(
    start_server: StartServer, channels: list[EmailChannel]
) -> None:
    """With a username and password set, Herald logs in before sending."""
    server = await start_server(auth=True)
    channel = make_channel(channels, server.config(username="herald", password="s3cret"))
    [result] = await channel.send(message(), [delivery(1, "a@example.com")])
    assert result.outcome is Outcome.SUCCESS
    assert (await server.handler.wait_for(1))[0].login == b"herald"


async def test_wrong_password_fails(
    start_server: StartServer, channels: list[EmailChannel]
) -> None:
    """A refused login (535) fails with the server's reply, and nothing is sent."""
    server = await start_server(auth=True)
    channel = make_channel(channels, server.config(username="herald", password="wrong"))
    [result] = await channel.send(message(), [delivery(1, "a@example.com")])
    assert result.outcome is Outcome.FAILED
    assert "535" in result.detail
    assert server.handler.attempts == []


async def test_required_starttls_is_never_skipped(
    server: Server, channels: list[EmailChannel]
) -> None:
    """If STARTTLS is configured but the server lacks it, nothing is sent in clear text."""
    channel = make_channel(channels, server.config(starttls=True))
    [result] = await channel.send(message(), [delivery(1, "a@example.com")])
    assert result.outcome is Outcome.FAILED
    assert "STARTTLS" in result.detail
    assert server.handler.attempts == []


async def test_cancellation_propagates_and_frees_the_connection(
    server: Server, channels: list[EmailChannel]
) -> None:
    """Cancelling a send (shutdown) is not swallowed, and the pool keeps working afterwards."""
    server.handler.hold = asyncio.Event()
    channel = make_channel(channels, server.config(connection_pool_size=1))
    task = asyncio.create_task(channel.send(message(), [delivery(1, "a@example.com")]))
    await server.handler.in_data.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    server.handler.hold = None
    [result] = await channel.send(message(), [delivery(2, "b@example.com")])
    assert result.outcome is Outcome.SUCCESS


async def test_close_says_quit(server: Server, channels: list[EmailChannel]) -> None:
    """Closing the channel ends its SMTP sessions politely."""
    channel = EmailChannel(server.config(connection_pool_size=2))
    await asyncio.gather(
        channel.send(message(), [delivery(1, "a@example.com")]),
        channel.send(message(), [delivery(2, "b@example.com")]),
    )
    await channel.close()
    assert server.handler.quits == channel.connections_opened


async def test_sandbox_records_without_network(channels: list[EmailChannel]) -> None:
    """Without SMTP settings, deliveries are recorded as done and say nothing was sent."""
    channel = make_channel(channels, None)
    assert channel.sandboxed
    results = await channel.send(message(), [delivery(1, "a@example.com")])
    assert [(r.outcome, r.detail) for r in results] == [(Outcome.SUCCESS, SANDBOX_DETAIL)]
    assert channel.connections_opened == 0
    assert await channel.probe(message(), [delivery(1, "a@example.com")]) is None


def test_config_rejects_ssl_and_starttls_together() -> None:
    """Asking for both TLS modes is a configuration error caught at start-up."""
    with pytest.raises(ValueError, match="STARTTLS or SSL"):
        SmtpConfig("smtp.example.org", 465, None, None, True, True, 10.0, SENDER)
