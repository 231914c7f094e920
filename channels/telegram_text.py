"""Telegram text rules: splitting long texts, escaping, and the subject as a bold first line.

Telegram limits a text message to 4096 characters *as it counts them*: UTF-16 code units, so an
emoji costs two. A longer text is split into several messages, never truncated.

Splitting contract (``split_with_separators`` makes it exact):
- every part is at most ``limit`` UTF-16 code units and is never empty (an empty text gives
  ``[""]``);
- a split point is chosen, in order of preference, at the last paragraph break (``"\\n\\n"``) or
  line break (``"\\n"``) that leaves the part at least half full, else at the last space, else
  anywhere (a hard split) — but never inside a character, so never inside a surrogate pair;
- the separator at a split point (``"\\n\\n"``, ``"\\n"``, ``" "``, or nothing for a hard split)
  is dropped, because Telegram would trim it anyway; re-inserting it gives back the text:
  ``"".join(part + sep for part, sep in split_with_separators(text)) == text``.
A grapheme cluster made of several code points (a flag, a family emoji) may be cut by a hard split:
only text with no whitespace for 4096 units can hit that.
"""

from __future__ import annotations

import html

TELEGRAM_TEXT_LIMIT = 4096

# Split preferences: (separator, the part must be at least this fraction of the limit).
# A paragraph or line break early in the window would waste most of a message, so it must leave
# the part half full; any space beats cutting a word.
_SEPARATORS: tuple[tuple[str, float], ...] = (("\n\n", 0.5), ("\n", 0.5), (" ", 0.0))

# Characters MarkdownV2 reserves; each must be escaped with a backslash outside entities.
_MARKDOWN_V2_SPECIAL = frozenset("\\_*[]()~`>#+-=|{}.!")
_MARKDOWN_LEGACY_SPECIAL = frozenset("_*`[")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _window_end(text: str, limit: int) -> int:
    """The largest index ``i`` such that ``text[:i]`` is at most ``limit`` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _split_point(text: str, end: int, limit: int) -> tuple[int, str]:
    """Where to cut ``text`` whose first ``end`` characters fit: (part length, separator)."""
    for separator, min_fill in _SEPARATORS:
        # The separator is dropped, so it may itself lie just past the window.
        index = text.rfind(separator, 0, end + len(separator))
        if index > 0 and utf16_len(text[:index]) >= limit * min_fill:
            return index, separator
    return end, ""


def _take(text: str, limit: int) -> tuple[str, str]:
    """The first part of ``text`` and the separator dropped after it."""
    end = _window_end(text, limit)
    if end == len(text):
        return text, ""
    cut, separator = _split_point(text, end, limit)
    return text[:cut], separator


def split_with_separators(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[tuple[str, str]]:
    """Split ``text`` into ``(part, dropped separator)`` pairs; see the module docstring."""
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 code units (one emoji)")
    pairs: list[tuple[str, str]] = []
    rest = text
    while True:
        part, separator = _take(rest, limit)
        pairs.append((part, separator))
        rest = rest[len(part) + len(separator) :]
        # A text ending right at a separator leaves nothing behind: no empty last part.
        if not rest:
            return pairs


def split_text(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split a long text into messages of at most ``limit`` UTF-16 units, never truncating."""
    return [part for part, _ in split_with_separators(text, limit)]


def escape_html(text: str) -> str:
    """Escape text for ``parse_mode="HTML"``: only ``<``, ``>`` and ``&`` are special there."""
    return html.escape(text, quote=False)


def escape_markdown_v2(text: str) -> str:
    """Escape text for ``parse_mode="MarkdownV2"`` (backslash before every reserved character)."""
    return "".join("\\" + char if char in _MARKDOWN_V2_SPECIAL else char for char in text)


def _escape_markdown_legacy(text: str) -> str:
    return "".join("\\" + char if char in _MARKDOWN_LEGACY_SPECIAL else char for char in text)


def render_text(subject: str, body: str, parse_mode: str | None) -> str:
    """The message text: the subject (if any) as a bold first line, then the escaped body.

    ``parse_mode`` is ``None`` (plain text: subject and body separated by a blank line),
    ``"HTML"``, ``"MarkdownV2"`` or the legacy ``"Markdown"``.
    """
    subject = subject.strip()
    if parse_mode is None:
        heading = subject
    elif parse_mode == "HTML":
        heading, body = f"<b>{escape_html(subject)}</b>", escape_html(body)
    elif parse_mode == "MarkdownV2":
        heading, body = f"*{escape_markdown_v2(subject)}*", escape_markdown_v2(body)
    elif parse_mode == "Markdown":
        heading, body = f"*{_escape_markdown_legacy(subject)}*", _escape_markdown_legacy(body)
    else:
        raise ValueError(f"unknown Telegram parse mode {parse_mode!r}")
    if not subject:
        return body
    return f"{heading}\n\n{body}" if body else heading


def render_messages(
    subject: str, body: str, parse_mode: str | None, limit: int = TELEGRAM_TEXT_LIMIT
) -> list[str]:
    """Render ``subject`` and ``body`` as one or more messages, each within ``limit`` once escaped.

    Splitting happens on the raw body, before escaping, so a split can never cut an entity
    (``&amp;``), an escape (``\\.``) or the bold subject. The subject goes on the first message
    only. The separators dropped are those of ``split_with_separators``.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 code units (one emoji)")
    messages: list[str] = []
    heading, rest = subject, body
    while True:
        room = limit
        while True:
            part, separator = _take(rest, room)
            text = render_text(heading, part, parse_mode)
            size, raw_size = utf16_len(text), utf16_len(part)
            if size <= limit or raw_size <= 2:
                break  # fits, or cannot shrink further (only an absurdly long subject)
            # Escaping (or the subject) made it grow: retry with proportionally less raw room.
            room = max(2, min(raw_size - 1, raw_size * limit // size))
        messages.append(text)
        heading, rest = "", rest[len(part) + len(separator) :]
        if not rest:
            return messages
