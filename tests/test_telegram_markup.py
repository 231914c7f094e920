"""Telegram's text formatting as the simulator parses it: what arrives bold, linked, or refused."""

from __future__ import annotations

import aiohttp
import pytest
import telegram
from telegram import MessageEntity
from telegram.error import BadRequest

from sandbox.telegram_markup import parse_text, utf16_slice
from sandbox.telegram_models import ApiError
from sandbox.telegram_simulator import TelegramSimulator

ANN = 1001


@pytest.fixture
def sim(telegram_sim: TelegramSimulator) -> TelegramSimulator:
    telegram_sim.add_user(ANN, "Ann")
    return telegram_sim


def shown(text: str, mode: str | None) -> list[tuple[str, str]]:
    """(entity type, the visible text it covers) for a parsed text."""
    parsed = parse_text(text, mode)
    return [
        (e["type"], utf16_slice(parsed.text, e["offset"], e["length"])) for e in parsed.entities
    ]


def refusal(text: str, mode: str) -> str:
    with pytest.raises(ApiError) as caught:
        parse_text(text, mode)
    assert caught.value.error_code == 400
    return caught.value.description


# --------------------------------------------------------------------------- through the Bot API


async def test_bold_word_and_link_arrive_with_entities(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """A bold word and a link arrive as entities PTB reads, and the record keeps them."""
    message = await telegram_bot.send_message(
        ANN,
        '<b>Invoice</b> ready: <a href="https://pay.example.org/i/7">pay here</a> &amp; thanks',
        parse_mode="HTML",
    )
    assert message.text == "Invoice ready: pay here & thanks"
    assert message.parse_entities(types=[MessageEntity.BOLD]).popitem()[1] == "Invoice"
    link = next(e for e in message.entities if e.type == MessageEntity.TEXT_LINK)
    assert link.url == "https://pay.example.org/i/7"
    recorded = sim.messages_to(ANN)[0]
    assert recorded.visible_text == "Invoice ready: pay here & thanks"
    assert recorded.formatted("bold") == ["Invoice"]
    assert recorded.links() == [("pay here", "https://pay.example.org/i/7")]
    assert recorded.to_json()["entities"] == [
        {"type": "bold", "offset": 0, "length": 7},
        {"type": "text_link", "offset": 15, "length": 8, "url": "https://pay.example.org/i/7"},
    ]


async def test_entity_offsets_count_utf16_units(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """After an emoji (two UTF-16 units) and a space, the italic entity starts at offset 3."""
    message = await telegram_bot.send_message(ANN, "😀 <i>ciao</i>", parse_mode="HTML")
    assert message.entities[0].offset == 3 and message.entities[0].length == 4
    assert message.parse_entity(message.entities[0]) == "ciao"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<marquee>hi</marquee>", 'Unsupported start tag "marquee" at byte offset 0'),
        ("Tom & Jerry", 'Character "&" must be escaped as "&amp;" at byte offset 4'),
        ("<b style='x'>hi</b>", 'Unsupported attribute "style" in the tag "b" at byte offset 0'),
        ("é <span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 3'),
        ("</i>", "Unexpected end tag at byte offset 0"),
    ],
)
async def test_malformed_html_is_refused_like_telegram(
    sim: TelegramSimulator, http_session: aiohttp.ClientSession, text: str, reason: str
) -> None:
    """Broken HTML answers 400 "can't parse entities" with Telegram's reason and byte offset."""
    url = f"{sim.base_url}{sim.token}/sendMessage"
    payload = {"chat_id": ANN, "text": text, "parse_mode": "HTML"}
    async with http_session.post(url, json=payload) as response:
        answer = await response.json()
    assert response.status == 400
    assert answer["description"] == f"Bad Request: can't parse entities: {reason}"
    assert sim.messages_to(ANN) == []


async def test_length_is_counted_after_parsing(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """4096 visible characters pass even with markup around them; 4097 are too long."""
    await telegram_bot.send_message(ANN, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    await telegram_bot.send_message(ANN, "&lt;" * 4096, parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is too long"):
        await telegram_bot.send_message(ANN, "<i>" + "x" * 4097 + "</i>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is too long"):
        await telegram_bot.send_message(ANN, "😀" * 2049)  # 4098 UTF-16 units
    with pytest.raises(BadRequest, match="Message text is empty"):
        await telegram_bot.send_message(ANN, "<b> </b>", parse_mode="HTML")
    assert [len(m.visible_text or "") for m in sim.messages_to(ANN)] == [4096, 4096]


async def test_caption_is_parsed_and_limited(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """A caption's markup becomes caption entities; over 1024 visible characters is refused."""
    message = await telegram_bot.send_photo(
        ANN, "https://example.org/a.jpg", caption="<u>Look</u>", parse_mode="HTML"
    )
    assert message.caption == "Look"
    assert message.caption_entities[0].type == MessageEntity.UNDERLINE
    assert sim.messages_to(ANN)[0].formatted("underline") == ["Look"]
    with pytest.raises(BadRequest, match="caption is too long"):
        await telegram_bot.send_photo(
            ANN, "https://example.org/a.jpg", caption="<b>" + "y" * 1025 + "</b>"
        )


async def test_edit_reparses_the_text(sim: TelegramSimulator, telegram_bot: telegram.Bot) -> None:
    """editMessageText parses the new text; changing only the markup is a modification."""
    sent = await telegram_bot.send_message(ANN, "plain")
    await telegram_bot.edit_message_text("<b>plain</b>", ANN, sent.message_id, parse_mode="HTML")
    assert sim.messages_to(ANN)[0].formatted("bold") == ["plain"]
    with pytest.raises(BadRequest, match="not modified"):
        await telegram_bot.edit_message_text(
            "<b>plain</b>", ANN, sent.message_id, parse_mode="HTML"
        )


async def test_markdown_v2_still_checked_and_now_rendered(
    sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """MarkdownV2 refuses unescaped reserved characters and renders bold, escapes and links."""
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await telegram_bot.send_message(ANN, "Price 3.50!", parse_mode="MarkdownV2")
    message = await telegram_bot.send_message(
        ANN,
        r"*News*" "\n\n" r"Price 3\.50\! [site](https://example.org/a\)b)",
        parse_mode="MarkdownV2",
    )
    assert message.text == "News\n\nPrice 3.50! site"
    recorded = sim.messages_to(ANN)[0]
    assert recorded.formatted("bold") == ["News"]
    assert recorded.links() == [("site", "https://example.org/a)b")]


# --------------------------------------------------------------------------- the parsers alone


def test_html_tags_map_to_telegram_entities() -> None:
    """Every supported HTML tag becomes the entity Telegram makes of it."""
    text = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        '<del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler><code>c</code>'
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji><blockquote>quote</blockquote>'
        "<blockquote expandable>more</blockquote>"
    )
    assert [kind for kind, _ in shown(text, "HTML")] == [
        "bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
        "strikethrough", "strikethrough", "spoiler", "spoiler", "code", "custom_emoji",
        "blockquote", "expandable_blockquote",
    ]  # fmt: skip


def test_pre_with_language_and_entities_decoded() -> None:
    """pre wrapping code class="language-x" is one pre entity with a language; entities decode."""
    parsed = parse_text(
        '<pre><code class="language-python">if a &lt; b &amp;&amp; c:</code></pre>&#8364;&#x1F600;',
        "HTML",
    )
    assert parsed.text == "if a < b && c:€😀"
    assert parsed.entities == [{"type": "pre", "offset": 0, "length": 14, "language": "python"}]


def test_links_like_telegram() -> None:
    """Only http(s)/tg links stay links; a link without href uses its text; others stay text."""
    parsed = parse_text(
        '<a href="javascript:alert(1)">x</a> <a>https://a.example</a> <a href="tg://resolve?domain=x">t</a>',
        "HTML",
    )
    assert [(e["type"], e.get("url")) for e in parsed.entities] == [
        ("text_link", "https://a.example"),
        ("text_link", "tg://resolve?domain=x"),
    ]


def test_lenient_html_behaves_like_telegram() -> None:
    """With strict=False a bare & and unknown attributes pass, as on the real Telegram."""
    assert parse_text("Tom & Jerry", "HTML", strict=False).text == "Tom & Jerry"
    assert parse_text("<b class='x'>y</b>", "HTML", strict=False).entities[0]["type"] == "bold"


def test_whitespace_is_trimmed_with_the_entities() -> None:
    """Leading and trailing whitespace is dropped and entities shift with the text."""
    parsed = parse_text("\n  <b> hi </b> there \n", "HTML")
    assert parsed.text == "hi  there"
    assert shown("\n  <b> hi </b> there \n", "HTML") == [("bold", "hi ")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("ok _it", "Can't find end of Italic entity at byte offset 3"),
        ("a = b", "Character '=' is reserved and must be escaped with the preceding '\\'"),
        ("[x](http://a", "Can't find end of a URL at byte offset 4"),
    ],
)
def test_markdown_v2_errors(text: str, reason: str) -> None:
    """MarkdownV2 mistakes get TDLib's reasons and byte offsets."""
    assert refusal(text, "MarkdownV2") == f"Bad Request: can't parse entities: {reason}"


def test_markdown_v2_entities() -> None:
    """MarkdownV2 bold, italic, underline, strike, spoiler, code, pre and quotes are parsed."""
    assert shown(r"*b* _i_ __u__ ~s~ ||p|| `c\`d`", "MarkdownV2") == [
        ("bold", "b"), ("italic", "i"), ("underline", "u"), ("strikethrough", "s"),
        ("spoiler", "p"), ("code", "c`d"),
    ]  # fmt: skip
    parsed = parse_text("```python\nprint(1)\n```", "MarkdownV2")
    assert parsed.text == "print(1)" and parsed.entities[0]["language"] == "python"
    assert shown(">line one\n>line two\nafter", "MarkdownV2") == [
        ("blockquote", "line one\nline two")
    ]
    assert shown("**>hidden\n>more||\nafter", "MarkdownV2") == [
        ("expandable_blockquote", "hidden\nmore")
    ]


def test_legacy_markdown() -> None:
    """Legacy Markdown: *bold*, _italic_, `code`, links, and its unclosed-entity error."""
    assert shown(r"*b* _i_ `c` [l](https://x.example) \*", "Markdown") == [
        ("bold", "b"), ("italic", "i"), ("code", "c"), ("text_link", "l"),
    ]  # fmt: skip
    assert refusal("*open", "Markdown").endswith(
        "Can't find end of the entity starting at byte offset 0"
    )


def test_text_mention_for_known_users_only() -> None:
    """tg://user?id= links become text mentions of users the bot knows; others stay text."""
    known = {7: {"id": 7, "is_bot": False, "first_name": "Ann"}}
    parsed = parse_text('<a href="tg://user?id=7">Ann</a> <a href="tg://user?id=8">Bo</a>', "HTML",
                        users=known.get)  # fmt: skip
    assert parsed.entities == [{"type": "text_mention", "offset": 0, "length": 3, "user": known[7]}]


def test_entities_after_the_hundredth_are_dropped() -> None:
    """Telegram formats the first 100 entities of a message; the text after keeps no format."""
    parsed = parse_text(" ".join(f"<b>{i}</b>" for i in range(150)), "HTML")
    assert parsed.text == " ".join(str(i) for i in range(150))
    assert len(parsed.entities) == 100
    assert utf16_slice(parsed.text, parsed.entities[-1]["offset"], 2) == "99"
