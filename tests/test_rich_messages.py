"""Rich broadcasts end to end: Markdown and HTML bodies and URL buttons as each channel carries
them (the Telegram simulator, aiosmtpd, the Skebby simulator), and what presend says a channel
leaves out."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.attachments import IncomingAttachment
from channels.composition import CompositionError
from channels.smtp_channel import EmailChannel
from persistence.models import Message
from persistence.users import user_by_name
from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator
from tests.api_support import Api, running_api
from tests.cli_support import Herald
from tests.conftest import Database
from tests.console_support import running_console
from tests.factories import make_customers
from tests.harness import pipeline
from tests.test_email_channel import Server, StartServer, start_server
from tests.test_sms_channel import number, sim_clock, skebby, sms_channel

__all__ = ["sim_clock", "skebby", "start_server"]  # fixtures shared with the channel tests

MESSAGES = "/api/v1/messages"
CHAT = 7_100_000
LINK = "https://example.com/hours"
BUTTONS = [
    [{"label": "Book a visit", "url": "https://example.com/book"}],
    [
        {"label": "Map", "url": "https://example.com/map"},
        {"label": "Bot", "url": "tg://resolve?domain=herald"},
    ],
]
MARKDOWN = f"**Closed** on *Friday*.\nSee [the hours]({LINK}) or write to `desk`."


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def _customer(api: Api, **fields: Any) -> int:
    (customer,) = await make_customers(api.db.sessions, 1, **fields)
    return int(customer.id)


async def test_invalid_markup_is_a_422_naming_the_position(api: Api) -> None:
    """A Markdown or HTML body with bad markup is refused with its line and column."""
    cid = await _customer(api)
    base = {"channels": ["storage"], "recipients": {"customer": [cid]}}
    answer = await api.post(
        MESSAGES, json={**base, "format": "markdown", "body": "Hi\n**there"}, expect=422
    )
    assert answer["error"]["message"].startswith("body: invalid markdown: line 2, column 1:")
    (detail,) = answer["error"]["details"]
    assert detail["loc"] == ["body", "body"]
    assert detail["details"] == {"line": 2, "column": 1, "offset": 3}
    answer = await api.post(
        MESSAGES, json={**base, "format": "html", "body": "ok <div>no</div>"}, expect=422
    )
    assert "line 1, column 4: <div> is not allowed" in answer["error"]["message"]
    answer = await api.post(
        MESSAGES,
        json={**base, "format": "html", "body": '<a href="javascript:x()">x</a>'},
        expect=422,
    )
    assert "bad href" in answer["error"]["message"]


async def test_bad_buttons_and_unknown_fields_are_refused(api: Api) -> None:
    """A button's URL must be http(s) or tg; the format must be known; format and buttons are
    not smuggled in through extra; unknown fields stay 422."""
    cid = await _customer(api)
    base = {"channels": ["storage"], "body": "Hi", "recipients": {"customer": [cid]}}
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"buttons": [[{"label": "x", "url": "javascript:alert(1)"}]]}, ["body", "buttons"]),
        ({"buttons": [[{"label": "x", "url": "https://"}]]}, ["body", "buttons"]),
        ({"format": "bbcode"}, ["body", "format"]),
        ({"extra": {"format": "html"}}, ["body", "extra"]),
        ({"buttons": [[{"label": "x", "url": "https://a.example", "color": "red"}]]}, None),
        ({"style": "bold"}, ["body", "style"]),
    ]
    for fields, loc in cases:
        answer = await api.post(MESSAGES, json={**base, **fields}, expect=422)
        if loc is not None:
            assert answer["error"]["details"][0]["loc"][: len(loc)] == loc, answer


async def test_format_and_buttons_are_stored_in_extra(api: Api) -> None:
    """The message keeps the body as written, with extra.format and extra.buttons beside the
    caller's own extra; plain text stores neither."""
    cid = await _customer(api)
    sent = await api.post(
        MESSAGES,
        json={
            "channels": ["storage"],
            "body": MARKDOWN,
            "format": "markdown",
            "buttons": BUTTONS,
            "extra": {"campaign": "winter"},
            "recipients": {"customer": [cid]},
        },
        expect=202,
    )
    shown = await api.get(f"{MESSAGES}/{sent['messages'][0]['id']}", expect=200)
    assert shown["body"] == MARKDOWN
    assert shown["extra"] == {"campaign": "winter", "format": "markdown", "buttons": BUTTONS}
    plain = await api.post(
        MESSAGES,
        json={"channels": ["storage"], "body": "Hi", "recipients": {"customer": [cid]}},
        expect=202,
    )
    assert (await api.get(f"{MESSAGES}/{plain['messages'][0]['id']}"))["extra"] == {}


async def test_idempotency_key_tells_formats_apart(api: Api) -> None:
    """The same key with another format or other buttons is a different request: 409."""
    cid = await _customer(api)
    body = {"channels": ["storage"], "body": "**Hi**", "recipients": {"customer": [cid]}}
    headers = {"Idempotency-Key": "rich-1"}
    await api.post(MESSAGES, json=body, headers=headers, expect=202)
    await api.post(MESSAGES, json={**body, "format": "markdown"}, headers=headers, expect=409)
    await api.post(MESSAGES, json={**body, "buttons": BUTTONS}, headers=headers, expect=409)
    await api.post(MESSAGES, json=body, headers=headers, expect=202)


async def test_presend_says_what_sms_drops(api: Api) -> None:
    """Presend lists, per channel, what it leaves out; SMS counts the text it will really send."""
    cid = await _customer(api, sms=lambda i: "+393331234567", email=lambda i: "a@example.com")
    plan = await api.post(
        MESSAGES,
        json={
            "channels": ["email", "sms"],
            "subject": "Closed",
            "body": MARKDOWN,
            "format": "markdown",
            "buttons": BUTTONS,
            "recipients": {"customer": [cid]},
            "presend": True,
        },
        expect=200,
    )
    by_channel = {c["channel"]: c for c in plan["channels"]}
    assert by_channel["email"]["drops"] == []
    assert by_channel["sms"]["drops"] == [
        "formatting is not sent by SMS (links are written out as their addresses)",
        "buttons are not sent by SMS (their addresses are added to the text)",
    ]
    sms_text = (
        f"Closed on Friday.\nSee the hours ({LINK}) or write to desk.\n\n"
        "Book a visit: https://example.com/book\nMap: https://example.com/map\n"
        "Bot: tg://resolve?domain=herald"
    )
    assert by_channel["sms"]["sms"]["characters"] == len(sms_text)


async def test_rich_telegram_message_arrives_with_entities_and_buttons(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A Markdown broadcast reaches the chat bold, italic, as code and with its link, the URL
    buttons under it, as the simulator parsed it the way Telegram does."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, telegram_chat_id=lambda i: CHAT)
        telegram_sim.add_user(CHAT, "Ada")
        answer = await p.send(
            subject="Office",
            body=MARKDOWN,
            format="markdown",
            buttons=BUTTONS,
            recipients={"customer": [c.id]},
        )
        await p.dispatcher.drain()
        assert await p.counters(answer.messages[0].id) == {"success": 1}
        (sent,) = telegram_sim.messages_to(CHAT)
        assert sent.parse_mode == "HTML"
        assert sent.visible_text == ("Office\n\nClosed on Friday.\nSee the hours or write to desk.")
        assert sent.formatted("bold") == ["Office", "Closed"]
        assert sent.formatted("italic") == ["Friday"]
        assert sent.formatted("code") == ["desk"]
        assert sent.links() == [("the hours", LINK)]
        assert sent.url_buttons() == [
            ("Book a visit", "https://example.com/book"),
            ("Map", "https://example.com/map"),
            ("Bot", "tg://resolve?domain=herald"),
        ]
        assert [len(row) for row in sent.inline_keyboard] == [1, 2]


async def test_long_html_is_split_with_buttons_on_the_last_part(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """An HTML body longer than one message is split with its formatting intact in every part;
    the buttons go under the last part only; presend counted the same parts."""
    paragraph = "<b>Notice</b> <i>" + "word " * 150 + f'</i><a href="{LINK}">hours</a>'
    body = "\n\n".join([paragraph] * 12)
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, telegram_chat_id=lambda i: CHAT)
        telegram_sim.add_user(CHAT, "Ada")
        request: dict[str, Any] = {
            "body": body,
            "format": "html",
            "buttons": BUTTONS[:1],
            "recipients": {"customer": [c.id]},
        }
        plan = await p.composer.presend(p.user, p.request(**request))
        parts = plan.channels[0].telegram_parts
        assert parts is not None and parts > 1
        await p.send(**request)
        await p.dispatcher.drain()
        sent = telegram_sim.messages_to(CHAT)
        assert len(sent) == parts
        for message in sent:
            assert len(message.visible_text or "") <= 4096
            assert message.formatted("bold")[0] == "Notice"
            assert {w for piece in message.formatted("italic") for w in piece.split()} == {"word"}
        assert [m.url_buttons() for m in sent] == [[]] * (parts - 1) + [
            [("Book a visit", "https://example.com/book")]
        ]
        assert sum(len(m.links()) for m in sent) == 12


async def test_buttons_go_under_the_last_attachment(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """With attachments the buttons follow the last message sent: the last file."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, telegram_chat_id=lambda i: CHAT)
        telegram_sim.add_user(CHAT, "Ada")
        await p.send(
            body="See the file",
            buttons=BUTTONS[:1],
            attachments=[IncomingAttachment("plan.pdf", b"%PDF-1.4 plan", "application/pdf")],
            recipients={"customer": [c.id]},
        )
        await p.dispatcher.drain()
        text, document = telegram_sim.messages_to(CHAT)
        assert text.visible_text == "See the file" and text.url_buttons() == []
        assert document.document is not None
        assert document.url_buttons() == [("Book a visit", "https://example.com/book")]


async def test_plain_text_is_escaped_as_before(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Without a format the body is plain text: tags and stars arrive as typed."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, telegram_chat_id=lambda i: CHAT)
        telegram_sim.add_user(CHAT, "Ada")
        await p.send(body="<b>not bold</b> **nor this** & co", recipients={"customer": [c.id]})
        await p.dispatcher.drain()
        (sent,) = telegram_sim.messages_to(CHAT)
        assert sent.visible_text == "<b>not bold</b> **nor this** & co"
        assert sent.entities == []


async def test_email_gets_html_from_markdown_and_keeps_the_text_part(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, start_server: StartServer
) -> None:
    """The email's HTML part shows the formatting and the buttons as links; the plain-text part
    is kept, with each link's address written out and the buttons listed."""
    server: Server = await start_server()
    email = EmailChannel(server.config())
    try:
        async with pipeline(db, telegram_sim, tmp_path, channels={"email": email}) as p:
            (c,) = await make_customers(db.sessions, 1, email=lambda i: "ada@example.com")
            await p.send(
                channels=["email"],
                subject="Office",
                body=MARKDOWN,
                format="markdown",
                buttons=BUTTONS[:1],
                recipients={"customer": [c.id]},
            )
            await p.dispatcher.drain()
        mail = (await server.handler.wait_for(1))[0].mail
        text, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().replace("\r\n", "\n").rstrip("\n") == (
            f"Closed on Friday.\nSee the hours ({LINK}) or write to desk.\n\n"
            "Book a visit: https://example.com/book"
        )
        page = html.get_content()
        assert "<b>Closed</b> on <i>Friday</i>.<br>" in page
        assert f'<a href="{LINK}">the hours</a>' in page and "<code>desk</code>" in page
        assert '<a href="https://example.com/book">Book a visit</a>' in page
    finally:
        await email.close()


async def test_sms_text_carries_the_urls(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """An SMS of a rich broadcast says the text without markup, links and buttons as URLs."""
    async with pipeline(db, telegram_sim, tmp_path, channels={"sms": sms_channel(skebby)}) as p:
        (c,) = await make_customers(db.sessions, 1, sms=number)
        await p.send(
            channels=["sms"],
            body=f'<b>Closed</b> Friday: <a href="{LINK}">hours</a>',
            format="html",
            buttons=BUTTONS[:1],
            recipients={"customer": [c.id]},
        )
        await p.dispatcher.drain()
    (order,) = skebby.orders.values()
    assert order.message == (
        f"Closed Friday: hours ({LINK})\n\nBook a visit: https://example.com/book"
    )


async def test_attachments_and_sms_go_out_with_a_drop_note(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """A broadcast with an attachment on Telegram and SMS is no longer refused: presend says SMS
    drops the attachment, Telegram gets the file, SMS the text."""
    request: dict[str, Any] = {
        "channels": ["telegram", "sms"],
        "body": "Your invoice is attached",
        "attachments": [IncomingAttachment("invoice.pdf", b"%PDF-1.4 x", "application/pdf")],
    }
    async with pipeline(db, telegram_sim, tmp_path, channels={"sms": sms_channel(skebby)}) as p:
        (c,) = await make_customers(db.sessions, 1, sms=number, telegram_chat_id=lambda i: CHAT)
        telegram_sim.add_user(CHAT, "Ada")
        request["recipients"] = {"customer": [c.id]}
        plan = (await p.composer.presend(p.user, p.request(**request))).to_json()
        drops = {ch["channel"]: ch["drops"] for ch in plan["channels"]}
        assert drops == {"telegram": [], "sms": ["attachments are not sent by SMS"]}
        answer = await p.send(**request)
        await p.dispatcher.drain()
        ids = {m.channel: m.id for m in answer.messages}
        assert await p.counters(ids["sms"]) == {"unknown": 1}
        assert await p.counters(ids["telegram"]) == {"success": 1}
        message = await p.message(ids["sms"])
        assert isinstance(message, Message)
    (order,) = skebby.orders.values()
    assert order.message == "Your invoice is attached"
    text, document = telegram_sim.messages_to(CHAT)
    assert text.visible_text == "Your invoice is attached" and document.document is not None


async def test_sms_with_nothing_but_attachments_is_refused(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """With no text an SMS would be empty: that, and only that, is refused."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, sms=number)
        with pytest.raises(CompositionError) as error:
            await p.send(
                channels=["sms"],
                body="",
                attachments=[IncomingAttachment("a.pdf", b"%PDF", "application/pdf")],
                recipients={"customer": [c.id]},
            )
        assert "the SMS would be empty" in error.value.message


def _readme_example() -> dict[str, Any]:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- rich-example:", 1)[1].split("```", 2)[1]
    argv = shlex.split(block.replace("\\\n", " "))
    return dict(json.loads(argv[argv.index("-d") + 1]))


async def test_the_readme_example_works_as_written(api: Api) -> None:
    """The README's rich example is accepted: its presend plans Telegram, email and SMS, with
    the SMS drops listed."""
    example = _readme_example()
    cid = await _customer(
        api,
        sms=lambda i: "+393331234567",
        email=lambda i: "a@example.com",
        telegram_chat_id=lambda i: 5,
    )
    example["recipients"] = {"customer": [cid]}
    plan = await api.post(MESSAGES, json=example, expect=200)
    by_channel = {c["channel"]: c for c in plan["channels"]}
    assert [by_channel[c]["valid"] for c in ("telegram", "email", "sms")] == [1, 1, 1]
    assert by_channel["sms"]["drops"][0].startswith("formatting is not sent by SMS")
    assert not any(c["problems"] for c in plan["channels"])


async def test_console_check_shows_the_formatting_buttons_and_drops(
    db: Database, tmp_path: Path
) -> None:
    """The console's check page previews the formatted Telegram text with its buttons, the SMS
    text with the URLs, and the drop notes; a bad button is named next to its field."""
    async with running_console(db, tmp_path) as console:
        browser = await console.user("alice")
        async with console.api.db.sessions() as session:
            alice = await user_by_name(session, "alice")
        assert alice is not None
        await make_customers(
            console.api.db.sessions,
            1,
            owner_id=alice.id,
            sms=lambda i: "+393331234567",
            telegram_chat_id=lambda i: CHAT,
        )
        form = {
            "channels": ["telegram", "sms"],
            "kind": "customer",
            "mode": "filter",
            "subject": "",
            "body": "We are **closed** on [Friday](https://example.com/f)",
            "format": "markdown",
            "buttons": "Book https://example.com/book | Map https://example.com/map",
        }
        page = await browser.post("/send/check", form)
        assert page.status == 200, page.text[:2000]
        assert 'We are <b>closed</b> on <a href="https://example.com/f">Friday</a>' in page.text
        assert '<a class="button" href="https://example.com/map"' in page.text
        assert "formatting is not sent by SMS" in page.text
        assert "We are closed on Friday (https://example.com/f)\n\nBook: " in page.text
        assert "Book: https://example.com/book\nMap: https://example.com/map" in page.text
        bad = await browser.post("/send/check", {**form, "buttons": "Pay javascript:alert(1)"})
        assert bad.status == 422
        assert (
            "Buttons, row 1, button 1: only http://, https:// and tg:// URLs are allowed"
            in bad.text
        )
        wrong = await browser.post("/send/check", {**form, "body": "**open"})
        assert wrong.status == 422 and "line 1, column 1: unclosed **" in wrong.text
        counted = await browser.post(
            "/send/counters",
            {"subject": "", "body": "**Hi** [x](https://e.example)", "format": "markdown"},
        )
        assert "Telegram: 4 of 4,096 characters" in counted.text
        assert "SMS: GSM, 24 characters" in counted.text  # Hi x (https://e.example)


async def test_cli_broadcast_takes_a_format_and_buttons(herald: Herald, db: Database) -> None:
    """herald broadcast --format markdown --button stores both; bad markup exits 1 naming the
    position, a bad button exits 2."""
    (c,) = await make_customers(db.sessions, 1)
    to = ["--channel", "storage", "--to", f"customer:{c.id}"]
    sent = await herald.json(
        "broadcast",
        *to,
        "--format",
        "markdown",
        "--body",
        "**Open** on Sunday",
        "--button",
        "Our site https://example.com | Map https://example.com/map",
        "--button",
        "Bot tg://resolve?domain=herald",
    )
    shown = await herald.json("messages", "show", str(sent["messages"][0]["id"]))
    assert shown["extra"] == {
        "format": "markdown",
        "buttons": [
            [
                {"label": "Our site", "url": "https://example.com"},
                {"label": "Map", "url": "https://example.com/map"},
            ],
            [{"label": "Bot", "url": "tg://resolve?domain=herald"}],
        ],
    }
    bad = await herald("broadcast", *to, "--format", "html", "--body", "<b>open")
    assert bad.code == 1 and "line 1, column 1: <b> is never closed" in bad.err
    button = await herald("broadcast", *to, "--body", "x", "--button", "Pay javascript:x")
    assert button.code == 2 and "--button: only http://, https:// and tg://" in button.err
