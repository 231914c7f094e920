"""Telegram's text formatting, parsed as Telegram parses it: HTML, MarkdownV2 and legacy Markdown.

:func:`parse_text` turns a message text and its ``parse_mode`` into what the recipient sees: the
visible text and its ``entities`` (``type``, ``offset`` and ``length`` in UTF-16 code units, plus
``url`` for ``text_link``, ``language`` for ``pre``, ``custom_emoji_id``, ``user`` for
``text_mention``). Malformed markup raises the 400 Telegram answers,
``Bad Request: can't parse entities: <reason> at byte offset N`` (offsets in UTF-8 bytes of the
text as sent). The parsers follow TDLib's (the library behind the Bot API server), including its
error texts; after parsing, leading and trailing whitespace is trimmed as Telegram does.

HTML, strict by default: Telegram keeps a bare ``&`` as text and ignores attributes it does not
know, but the simulator rejects both (``strict=False`` behaves like Telegram), so Herald can never
come to depend on that leniency. Allowed: b, strong, i, em, u, ins, s, strike, del,
``span class="tg-spoiler"``, tg-spoiler, ``a href``, code, pre (optionally wrapping
``code class="language-x"``), blockquote (optionally ``expandable``), ``tg-emoji emoji-id``;
entities ``&lt; &gt; &amp; &quot;`` and numeric ones.

Telegram formats at most 100 entities of a message (:data:`MAX_ENTITIES`): the message is sent
and the entities after the hundredth are dropped, as here.

Not simulated: the entities Telegram detects by itself in plain text (URLs, @mentions, hashtags).
"""

from __future__ import annotations

from sandbox.telegram_entities import SPACES, ParsedText, UserLookup, utf16_len
from sandbox.telegram_entities import check_link as check_link
from sandbox.telegram_entities import utf16_slice as utf16_slice
from sandbox.telegram_errors import JSON, bad_request
from sandbox.telegram_html import parse_html
from sandbox.telegram_markdown import parse_markdown, parse_markdown_v2

MAX_ENTITIES = 100


def _nobody(user_id: int) -> JSON | None:
    return None


def _trim(parsed: ParsedText) -> ParsedText:
    """Drop leading and trailing whitespace, as Telegram does, moving the entities along."""
    text = parsed.text
    stripped_left = text.lstrip("".join(SPACES))
    lead = utf16_len(text) - utf16_len(stripped_left)
    stripped = stripped_left.rstrip("".join(SPACES))
    total = utf16_len(stripped)
    entities: list[JSON] = []
    for entity in parsed.entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return ParsedText(stripped, entities)


def _drop_nested_in_code(entities: list[JSON]) -> list[JSON]:
    """Telegram shows nothing inside code and pre blocks but the code itself."""
    blocks = [e for e in entities if e["type"] in ("code", "pre")]
    kept = []
    for entity in entities:
        inside = any(
            block is not entity
            and block["offset"] <= entity["offset"]
            and entity["offset"] + entity["length"] <= block["offset"] + block["length"]
            and not (entity["type"] == "pre" and block["type"] == "code")
            for block in blocks
        )
        if not inside:
            if entity["type"] == "code":
                entity.pop("language", None)
            kept.append(entity)
    return kept


def parse_text(
    text: str,
    parse_mode: str | None,
    *,
    strict: bool = True,
    users: UserLookup | None = None,
) -> ParsedText:
    """Parse ``text`` the way Telegram does for ``parse_mode`` (None, HTML, MarkdownV2, Markdown).

    ``users`` finds a user's JSON by id, for ``tg://user?id=`` links (``text_mention``).
    """
    mode = (parse_mode or "").lower()
    known = users or _nobody
    if mode == "html":
        parsed = parse_html(text, strict=strict, users=known)
    elif mode == "markdownv2":
        parsed = parse_markdown_v2(text, known)
    elif mode == "markdown":
        parsed = parse_markdown(text, known)
    elif mode == "":
        parsed = ParsedText(text)
    else:
        raise bad_request("unsupported parse_mode")
    entities = sorted(
        _drop_nested_in_code(parsed.entities), key=lambda e: (e["offset"], -e["length"])
    )
    return _trim(ParsedText(parsed.text, entities[:MAX_ENTITIES]))


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text as the recipient sees it; raises the 400 Telegram gives for malformed markup."""
    return parse_text(text, parse_mode).text
