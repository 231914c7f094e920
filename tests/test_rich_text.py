"""Rich bodies: the Markdown subset and Telegram's HTML checked, converted and split as Telegram
parses them (the simulator's parser is the judge)."""

from __future__ import annotations

import random

import jinja2
import pytest

from channels.rich_text import (
    Button,
    ButtonError,
    Format,
    MarkupError,
    check_buttons,
    email_html,
    inline_keyboard,
    markdown_to_html,
    parse_button_lines,
    plain_text,
    split_html,
    telegram_html,
    telegram_messages,
    validate_html,
)
from sandbox.telegram_markup import parse_text

LINK = "https://example.com/hours?a=1&b=2"


def test_markdown_becomes_telegram_entities() -> None:
    """Bold, italic, code and a link written in Markdown arrive as Telegram's entities."""
    source = f"Hello **Ada**, the *new* hours: [see here]({LINK}).\nCode `a<b` stays.\n5 * 3 ok"
    parsed = parse_text(markdown_to_html(source), "HTML")
    assert parsed.text == "Hello Ada, the new hours: see here.\nCode a<b stays.\n5 * 3 ok"
    kinds = {e["type"]: e for e in parsed.entities}
    assert set(kinds) == {"bold", "italic", "code", "text_link"}
    assert kinds["text_link"]["url"] == LINK


def test_plain_text_words_are_not_formatting() -> None:
    """snake_case, a lone star and a bracketed word stay as written; backslash escapes work."""
    source = "file_name_here, 2 * 3, [draft], \\*not italic\\*"
    assert parse_text(markdown_to_html(source), "HTML").text == (
        "file_name_here, 2 * 3, [draft], *not italic*"
    )


@pytest.mark.parametrize(
    ("source", "line", "column", "reason"),
    [
        ("Hello **Ada", 1, 7, "unclosed **"),
        ("ok\nsee [it](javascript:alert(1))", 2, 10, "only http://, https:// and tg://"),
        ("a `b", 1, 3, "unclosed `"),
        ("*a **b* c**", 1, 7, "closes before"),
        ("[x](ftp://example.com)", 1, 5, "only http://"),
    ],
)
def test_bad_markdown_names_the_position(source: str, line: int, column: int, reason: str) -> None:
    """Malformed Markdown is refused with the line and column of the problem."""
    with pytest.raises(MarkupError) as error:
        markdown_to_html(source)
    assert (error.value.line, error.value.column) == (line, column)
    assert reason in str(error.value)
    assert str(error.value).startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(
    ("source", "column", "reason"),
    [
        ("<b>bold", 1, "<b> is never closed"),
        ("<b><i>x</b></i>", 8, "</b> found where </i> was expected"),
        ("<div>x</div>", 1, "<div> is not allowed"),
        ("x<br>y", 2, "<br> is not allowed (use a line break)"),
        ("Tom & Jerry", 5, 'write "&" as &amp;'),
        ("1 < 2", 3, 'write "<" as &lt;'),
        ("&nbsp;", 1, 'write "&" as &amp;'),
        ('<a href="javascript:alert(1)">x</a>', 1, "bad href"),
        ("<a>x</a>", 1, "needs an href"),
        ('<b class="x">x</b>', 1, 'cannot have the attribute "class"'),
        ("<span>x</span>", 1, 'must be <span class="tg-spoiler">'),
        ("<code><b>x</b></code>", 7, "<code> cannot contain other tags"),
        ("<b><code>x</code></b>", 4, "<b> cannot contain <code>"),
        ('<a href="https://a.example"><a href="https://b.example">x</a></a>', 29, "another link"),
        ("<blockquote><blockquote>x</blockquote></blockquote>", 13, "inside another"),
        ("</i>", 1, "closes nothing"),
    ],
)
def test_bad_html_names_the_position(source: str, column: int, reason: str) -> None:
    """HTML outside Telegram's subset, unbalanced or with a bad link is refused where it is."""
    with pytest.raises(MarkupError) as error:
        validate_html(source)
    assert error.value.column == column and error.value.offset == column - 1
    assert reason in error.value.reason


def test_telegrams_whole_html_subset_is_accepted() -> None:
    """Every tag Telegram documents passes, and the simulator parses it without complaint."""
    source = (
        "<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <ins>n</ins> <s>s</s> "
        '<strike>k</strike> <del>d</del> <span class="tg-spoiler">p</span> '
        "<tg-spoiler>q</tg-spoiler> "
        "<a href=\"tg://user?id=1\">m</a> <a href='https://example.com'>l</a> <code>c</code> "
        '<pre><code class="language-python">x = 1</code></pre> <blockquote>q</blockquote> '
        "<blockquote expandable>e</blockquote> <b>x <i>y <u>z</u></i></b> &lt;&gt;&amp;&quot;&#39;"
    )
    assert validate_html(source) == source
    parse_text(source, "HTML")


def test_placeholders_are_opaque() -> None:
    """{{ … }} and {% … %} are copied untouched: not formatted, not escaped, in every output."""
    source = "Dear **{{ name }}**, {% if a < b %}_yes_{% endif %} {{ x * y_z }}"
    converted = markdown_to_html(source)
    assert converted == "Dear <b>{{ name }}</b>, {% if a < b %}<i>yes</i>{% endif %} {{ x * y_z }}"
    assert validate_html(converted) == converted
    assert telegram_html("a < {{ b & c }}", Format.TEXT) == "a &lt; {{ b & c }}"
    assert plain_text(source, Format.MARKDOWN).startswith("Dear {{ name }}, {% if a < b %}yes")
    assert "{{ name }}" in email_html("S", source, Format.MARKDOWN)


def test_plain_text_and_email_from_markdown() -> None:
    """The email text part writes each link as label (url) and lists the buttons; the HTML part
    keeps the formatting with line breaks and shows the buttons as links."""
    buttons = check_buttons([[{"label": "Book", "url": "https://example.com/book"}]])
    source = f"**Closed** on Friday.\nSee [the hours]({LINK}) or {LINK}: [{LINK}]({LINK})"
    assert plain_text(source, Format.MARKDOWN, buttons) == (
        f"Closed on Friday.\nSee the hours ({LINK}) or {LINK}: {LINK}\n\n"
        "Book: https://example.com/book"
    )
    page = email_html("Notice", source, Format.MARKDOWN, buttons)
    assert "<b>Closed</b> on Friday.<br>\nSee <a href=" in page
    assert 'href="https://example.com/hours?a=1&amp;b=2">the hours</a>' in page
    assert '<a href="https://example.com/book">Book</a>' in page


def test_buttons_are_checked() -> None:
    """Buttons: at most 3 rows of 3, a label of at most 64 characters, http(s) or tg URLs."""
    good = check_buttons([[{"label": " Site ", "url": "https://example.com"}]])
    assert good == ((Button("Site", "https://example.com"),),)
    assert inline_keyboard(good) == {
        "inline_keyboard": [[{"text": "Site", "url": "https://example.com"}]]
    }
    cases = [
        ([[{"label": "x", "url": "javascript:alert(1)"}]], "buttons[0][0].url"),
        ([[{"label": "x", "url": "https://"}]], "buttons[0][0].url"),
        ([[{"label": "x", "url": "https://a.example/" + "x" * 2048}]], "buttons[0][0].url"),
        ([[{"label": "", "url": "https://a.example"}]], "buttons[0][0].label"),
        ([[{"label": "x" * 65, "url": "https://a.example"}]], "buttons[0][0].label"),
        ([[{"label": "x", "url": "https://a.example"}]] * 4, "buttons"),
        ([[{"label": "x", "url": "https://a.example"}] * 4], "buttons[0]"),
        ([[]], "buttons[0]"),
    ]
    for rows, field in cases:
        with pytest.raises(ButtonError) as error:
            check_buttons(rows)
        assert error.value.field == field


def test_buttons_as_typed() -> None:
    """One row per line, | between buttons, the URL last: how the console and CLI read them."""
    rows = parse_button_lines(["Our site https://example.com | Chat tg://resolve?domain=x", ""])
    assert rows == (
        (Button("Our site", "https://example.com"), Button("Chat", "tg://resolve?domain=x")),
    )
    with pytest.raises(ButtonError):
        parse_button_lines(["https://example.com"])


def _visible(parts: list[str]) -> str:
    return "".join(parse_text(part, "HTML").text for part in parts)


def test_long_rich_text_is_split_between_characters_with_tags_reopened() -> None:
    """A long formatted text is split into parts Telegram accepts, within 4,096 characters each,
    every tag open at a cut closed and opened again, nothing lost but the separators."""
    rng = random.Random(7)
    words = ["__bold__", "*it*", f"[link]({LINK})", "_x_", "plain", "àè€", "👍", "a&b"]
    paragraphs = [
        " ".join(rng.choice(words) for _ in range(rng.randint(5, 120))) for _ in range(120)
    ]
    source = "**" + "\n\n".join(paragraphs).replace("**", "") + "**"
    parts = split_html(markdown_to_html(source))
    assert len(parts) > 3
    for part in parts:
        parsed = parse_text(part, "HTML")
        assert len(parsed.text.encode("utf-16-le")) // 2 <= 4096
        assert parsed.entities[0]["type"] == "bold" and parsed.entities[0]["offset"] == 0
    whole = parse_text(markdown_to_html(source), "HTML").text
    assert "".join(_visible(parts).split()) == "".join(whole.split())


def test_many_entities_are_split_before_telegram_drops_them() -> None:
    """Telegram formats only 100 entities per message: a part never carries more."""
    source = " ".join(f"<b>{i}</b>" for i in range(250))
    parts = split_html(source)
    assert len(parts) == 3
    assert [len(parse_text(p, "HTML").entities) for p in parts] == [100, 100, 50]


def test_subject_is_a_bold_first_line() -> None:
    """The subject comes first, in bold and escaped, then the converted body."""
    assert telegram_messages("Fish & chips", "*today*", Format.MARKDOWN) == [
        "<b>Fish &amp; chips</b>\n\n<i>today</i>"
    ]


def test_placeholders_render_after_conversion_with_autoescape() -> None:
    """Converted first, rendered after (Jinja2 autoescaping, as personalisation does): the value
    arrives as text, never as markup, and the split counts the rendered text."""
    env = jinja2.Environment(autoescape=True)
    name = "<Ann & 'Bob'> **x**"

    def render(text: str) -> str:
        return env.from_string(text).render(name=name)

    (part,) = telegram_messages(
        "Hi {{ name }}", "Dear **{{ name }}**", Format.MARKDOWN, render=render
    )
    parsed = parse_text(part, "HTML")
    assert parsed.text == f"Hi {name}\n\nDear {name}"
    assert [e["type"] for e in parsed.entities] == ["bold", "bold"]
    plain_env = jinja2.Environment(autoescape=False)  # noqa: S701 - a plain-text part, not HTML
    text = plain_text(
        "Dear **{{ name }}**",
        Format.MARKDOWN,
        render=lambda t: plain_env.from_string(t).render(name=name),
    )
    assert text == f"Dear {name}"
    page = email_html("S", "Dear **{{ name }}**", Format.MARKDOWN, render=render)
    assert "Dear <b>&lt;Ann &amp; &#39;Bob&#39;&gt; **x**</b>" in page
