"""Personalised broadcasts: placeholders rendered per recipient, escaped per channel, checked for
every recipient by presend, refused when unsafe, and sent as parametric SMS."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.base import Delivery
from channels.personalise import MissingDataError, TemplateError, render_for_recipient
from channels.smtp_channel import EmailChannel
from persistence import outbox
from persistence.users import user_by_name
from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator
from tests.api_support import Api, running_api
from tests.conftest import Database
from tests.console_support import running_console
from tests.factories import make_customers
from tests.harness import pipeline
from tests.test_email_channel import Server, StartServer, start_server
from tests.test_sms_channel import number, sim_clock, skebby, sms_pipeline

__all__ = ["sim_clock", "skebby", "start_server"]  # fixtures shared with the channel tests

MESSAGES = "/api/v1/messages"
CHAT = 7_200_000
BODY = "Dear {{ name }}, contract {{ extra.contract_number }} renews soon."


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def test_presend_renders_every_recipient_and_send_skips_the_incomplete(api: Api) -> None:
    """A recipient without the placeholder's value is invalid ("missing extra.contract_number")
    in presend, with previews of the rendered messages; the send skips them like any invalid;
    the inbox thread shows what the recipient got."""
    anna, bruno = await make_customers(
        api.db.sessions,
        2,
        name=lambda i: ["Anna", "Bruno"][i],
        extra=lambda i: [{"contract_number": "C-17"}, {}][i],
    )
    request: dict[str, Any] = {
        "channels": ["storage"],
        "subject": "Hello {{ name }}",
        "body": BODY,
        "recipients": {"customer": [anna.id, bruno.id]},
    }
    plan = await api.post(MESSAGES, json={**request, "presend": True}, expect=200)
    (channel,) = plan["channels"]
    assert channel["valid"] == 1 and channel["invalid"] == 1
    assert channel["personalised"] is True
    (invalid,) = channel["invalid_recipients"]
    assert invalid["id"] == bruno.id and invalid["reason"] == "missing extra.contract_number"
    (preview,) = channel["previews"]
    assert preview["subject"] == "Hello Anna"
    assert preview["text"] == "Dear Anna, contract C-17 renews soon."
    sent = await api.post(MESSAGES, json=request, expect=202)
    assert sent["messages"][0]["counts"] == {"pending": 1, "invalid": 1, "duplicate": 0}
    thread = await api.get(f"/api/v1/recipients/customer/{anna.id}/messages", expect=200)
    (entry,) = thread["items"]
    assert (entry["subject"], entry["body"]) == (
        "Hello Anna",
        "Dear Anna, contract C-17 renews soon.",
    )


async def test_unusable_placeholders_are_a_422_naming_the_field(api: Api) -> None:
    """A syntax error, an unknown name, a call or an attribute outside the recipient's data is
    refused before anything is sent, naming subject or body; nothing is executed."""
    (c,) = await make_customers(api.db.sessions, 1)
    base = {"channels": ["storage"], "recipients": {"customer": [c.id]}}
    cases = [
        ({"body": "Hi {{ name"}, "body", "placeholder syntax error"),
        ({"body": "Hi", "subject": "{{ nobody }}"}, "subject", "unknown placeholder 'nobody'"),
        ({"body": "{{ extra.__class__ }}"}, "body", "'__class__' is not allowed"),
        ({"body": "{{ ''.__class__.__mro__ }}"}, "body", "is not allowed"),
        ({"body": "{{ name.upper() }}"}, "body", "cannot call"),
        ({"body": "{{ name | center(99) }}"}, "body", "unknown filter 'center'"),
    ]
    for fields, field, reason in cases:
        answer = await api.post(MESSAGES, json={**base, **fields}, expect=422)
        assert answer["error"]["details"][0]["loc"][-1] == field, answer
        assert reason in answer["error"]["message"], answer


def test_sandbox_refuses_repetition_at_render_time() -> None:
    """A placeholder cannot build a huge text (``name * 1000``): the sandbox refuses it."""
    with pytest.raises(MissingDataError, match="refused by the sandbox"):
        render_for_recipient("", "{{ name * 1000 }}", {"name": "A"}, "sms")
    with pytest.raises(TemplateError):
        render_for_recipient("", "{{ extra.__dict__ }}", {"extra": {}}, "sms")


async def test_telegram_values_arrive_escaped(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """Markup in a value is shown as typed on Telegram, in plain text and in a Markdown body;
    the body's own formatting stays."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(
            db.sessions,
            1,
            name="Ann <b>& **Co**",
            telegram_chat_id=CHAT,
            extra={"contract_number": "<i>7</i>"},
        )
        telegram_sim.add_user(CHAT, "Ann")
        await p.send(body=BODY, recipients={"customer": [c.id]})
        await p.send(body="**Hi** {{ name }}", format="markdown", recipients={"customer": [c.id]})
        await p.dispatcher.drain()
        plain, rich = telegram_sim.messages_to(CHAT)
        assert plain.visible_text == "Dear Ann <b>& **Co**, contract <i>7</i> renews soon."
        assert plain.entities == []
        assert rich.visible_text == "Hi Ann <b>& **Co**"
        assert rich.formatted("bold") == ["Hi"]


async def test_email_text_is_raw_and_html_is_escaped(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, start_server: StartServer
) -> None:
    """Email: the subject and text part carry the values as they are, the HTML part escaped."""
    server: Server = await start_server()
    email = EmailChannel(server.config())
    try:
        async with pipeline(db, telegram_sim, tmp_path, channels={"email": email}) as p:
            (c,) = await make_customers(
                db.sessions,
                1,
                name="Tom & <Jerry>",
                email="tom@example.com",
                extra={"contract_number": "X1"},
            )
            await p.send(
                channels=["email"],
                subject="For {{ name }}",
                body=BODY,
                body_html="<p>Dear <b>{{ name }}</b></p>",
                recipients={"customer": [c.id]},
            )
            await p.dispatcher.drain()
        mail = (await server.handler.wait_for(1))[0].mail
        assert mail["Subject"] == "For Tom & <Jerry>"
        text, page = mail.get_body(("plain",)), mail.get_body(("html",))
        assert text is not None and page is not None
        assert text.get_content().strip() == "Dear Tom & <Jerry>, contract X1 renews soon."
        assert "<p>Dear <b>Tom &amp; &lt;Jerry&gt;</b></p>" in page.get_content()
    finally:
        await email.close()


async def test_telegram_limit_is_checked_after_rendering(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A long value makes only that recipient's Telegram message two parts: presend counts it,
    the chat receives it split."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        short, long = await make_customers(
            db.sessions,
            2,
            telegram_chat_id=lambda i: CHAT + i,
            extra=lambda i: {"note": "ok" if i == 0 else "word " * 1000},
        )
        telegram_sim.add_user(CHAT, "A")
        telegram_sim.add_user(CHAT + 1, "B")
        request: dict[str, Any] = {
            "body": "Note: {{ extra.note }}",
            "recipients": {"customer": [short.id, long.id]},
        }
        plan = await p.composer.presend(p.user, p.request(**request))
        assert plan.channels[0].units == 3
        await p.send(**request)
        await p.dispatcher.drain()
        assert len(telegram_sim.messages_to(CHAT)) == 1
        assert len(telegram_sim.messages_to(CHAT + 1)) == 2


async def test_sms_goes_as_paramsms_batched_by_encoding(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """One accented name makes that recipient's SMS UCS-2 and two fragments: presend says so and
    prices it; the send is parametric, one order per encoding, each text billed its fragments."""
    body = "Dear {{ name }}, your contract renews on the first of next month. Thanks, Herald"
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        customers = await make_customers(
            db.sessions, 3, sms=number, name=lambda i: ["Anna", "Bruno", "Łukasz"][i]
        )
        request: dict[str, Any] = {
            "channels": ["sms"],
            "body": body,
            "recipients": {"customer": [c.id for c in customers]},
        }
        plan = (await p.composer.presend(p.user, p.request(**request))).channels[0]
        assert plan.units == 4
        shown = plan.to_json()
        assert shown["sms_encodings"] == {"gsm": 2, "ucs2": 1}
        assert shown["estimated_cost"] == "0.24"
        assert [v["fragments"] for v in shown["previews"]] == [1, 1, 2]
        answer = await p.send(**request)
        await p.dispatcher.drain()
        rows = await p.deliveries(answer.messages[0].id)
        assert sorted(r.sent_number for r in rows) == [1, 1, 2]
    assert skebby.requests["POST paramsms"] == 2 and skebby.requests["POST sms"] == 0
    by_encoding = {o.encoding: o for o in skebby.orders.values()}
    assert by_encoding.keys() == {"gsm", "ucs2"}
    assert by_encoding["ucs2"].recipients[number(2)].message == body.replace("{{ name }}", "Łukasz")
    assert by_encoding["gsm"].recipients[number(0)].fragments == 1


async def test_lost_paramsms_answer_is_probed_not_sent_twice(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path, skebby: SkebbySimulator
) -> None:
    """Skebby took the parametric order but the answer was lost: the retry probes its order id
    and does not resend; the units are each recipient's own."""
    async with sms_pipeline(db, telegram_sim, tmp_path, skebby) as (p, _):
        customers = await make_customers(db.sessions, 2, sms=number, name=lambda i: f"N{i}")
        answer = await p.send(
            channels=["sms"],
            body="Hi {{ name }}",
            recipients={"customer": [c.id for c in customers]},
        )
        skebby.drop_answer_next("paramsms")
        await p.dispatcher.drain()
        (order_id,) = skebby.orders
        p.clock.advance(3600)
        assert await p.dispatcher.drain() == 2
        assert skebby.requests["POST paramsms"] == 1
        assert skebby.requests["GET sms/{order_id}"] == 1
        rows = await p.deliveries(answer.messages[0].id)
        assert {(r.status, r.provider_id, r.sent_number) for r in rows} == {
            ("unknown", order_id, 1)
        }


async def test_unpersonalised_broadcast_stores_no_params(
    db: Database, telegram_sim: TelegramSimulator, tmp_path: Path
) -> None:
    """A body without placeholders is sent as written: its deliveries carry no parameters."""
    async with pipeline(db, telegram_sim, tmp_path) as p:
        (c,) = await make_customers(db.sessions, 1, telegram_chat_id=CHAT)
        answer = await p.send(body="Plain {name} text", recipients={"customer": [c.id]})
        (row,) = await p.deliveries(answer.messages[0].id)
        assert row.params is None
        claimed = await p.claim_as_dead_worker("telegram")
        assert [d.params for d in claimed] == [None]
    assert Delivery(1, 1, "customer", 1, "x", 1).params is None
    assert outbox.ClaimedDelivery(1, 1, "customer", 1, "x", 1, None).params is None


async def test_console_check_page_shows_previews_and_reasons(db: Database, tmp_path: Path) -> None:
    """The console's check page shows each first recipient's rendered message (values escaped)
    and, for the others, why they will not get it."""
    async with running_console(db, tmp_path) as console:
        browser = await console.user("alice")
        async with console.api.db.sessions() as session:
            alice = await user_by_name(session, "alice")
        assert alice is not None
        await make_customers(
            console.api.db.sessions,
            2,
            owner_id=alice.id,
            name=lambda i: ["Ann <b>", "Bob"][i],
            telegram_chat_id=lambda i: CHAT + i,
            extra=lambda i: [{"contract_number": "C-9"}, {}][i],
        )
        form = {
            "channels": ["telegram"],
            "kind": "customer",
            "mode": "filter",
            "subject": "",
            "body": BODY,
        }
        page = await browser.post("/send/check", form)
        assert page.status == 200, page.text[:2000]
        assert "Dear Ann &lt;b&gt;, contract C-9 renews soon." in page.text
        assert "missing extra.contract_number" in page.text
        assert "Preview for the first recipients" in page.text


def _readme_example() -> dict[str, Any]:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("<!-- personalise-example:", 1)[1].split("```", 2)[1]
    argv = shlex.split(block.replace("\\\n", " "))
    return dict(json.loads(argv[argv.index("-d") + 1]))


async def test_the_readme_example_works_as_written(api: Api) -> None:
    """The README's personalisation example, after the README's PATCH of one customer's extra:
    presend renders that one and reports the other as missing extra.contract_number."""
    example = _readme_example()
    first, second = await make_customers(
        api.db.sessions,
        2,
        name=lambda i: f"Client {i}",
        sms=lambda i: f"+39333123456{i}",
        email=lambda i: f"c{i}@example.com",
        telegram_chat_id=lambda i: 50 + i,
    )
    await api.call(
        "PATCH",
        f"/api/v1/recipients/customer/{first.id}",
        json={"extra": {"contract_number": "C-17"}},
        expect=200,
    )
    example["recipients"] = {"customer": [first.id, second.id]}
    plan = await api.post(MESSAGES, json=example, expect=200)
    for channel in plan["channels"]:
        assert (channel["valid"], channel["invalid"]) == (1, 1), channel
        assert channel["invalid_recipients"][0]["reason"] == "missing extra.contract_number"
    sms = next(c for c in plan["channels"] if c["channel"] == "sms")
    assert sms["previews"][0]["text"] == "Dear Client 0, contract C-17 renews on 1 March."


def test_render_for_recipient_escapes_per_channel() -> None:
    """The renderer other features call: Telegram HTML and email HTML escaped, SMS and the email
    text part raw, an HTML body's own tags kept."""
    context = {"name": "A & <B>", "extra": {"code": 7}}
    telegram = render_for_recipient(
        "", "<b>Hi</b> {{ name }} #{{ extra.code }}", context, "telegram", fmt="html"
    )
    assert telegram.texts == ("<b>Hi</b> A &amp; &lt;B&gt; #7",)
    sms = render_for_recipient("", "<b>Hi</b> {{ name }}", context, "sms", fmt="html")
    assert sms.text == "Hi A & <B>" and sms.sms is not None and sms.sms.encoding == "gsm"
    email = render_for_recipient("S {{ name }}", "Hi {{ name }}", context, "email")
    assert email.subject == "S A & <B>" and email.text == "Hi A & <B>"
    assert email.html is not None and "Hi A &amp; &lt;B&gt;" in email.html
    with pytest.raises(MissingDataError, match=r"missing extra\.other"):
        render_for_recipient("", "{{ extra.other }}", context, "telegram")
