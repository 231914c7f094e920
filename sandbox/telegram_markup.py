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

Not simulated: the entities Telegram detects by itself in plain text (URLs, @mentions, hashtags).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.telegram_errors import JSON, ApiError, bad_request

_SPACES = frozenset(" \t\r\n\v\f")
_TAG_END = _SPACES | {">"}
_ATTRIBUTE_END = _SPACES | {"=", ">"}
_LANGUAGE_END = _SPACES | {"`"}
_HTML_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji",
        "span", "pre", "code", "blockquote",
    }
)  # fmt: skip
_HTML_SIMPLE = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler",
}  # fmt: skip
# (tag, attribute) pairs Telegram understands; anything else is ignored by Telegram, refused here.
_HTML_ATTRIBUTES = frozenset(
    {
        ("a", "href"),
        ("code", "class"),
        ("span", "class"),
        ("tg-emoji", "emoji-id"),
        ("blockquote", "expandable"),
    }
)
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_MD2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MD2_TYPE_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji", "blockquote": "BlockQuote",
    "expandable_blockquote": "ExpandableBlockQuote",
}  # fmt: skip
_USER_LINK_RE = re.compile(r"tg://user\?id=(\d{1,15})", re.IGNORECASE)
_EMOJI_LINK_RE = re.compile(r"tg://emoji\?id=(\d{1,20})", re.IGNORECASE)
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+(?::\d+)?")


UserLookup = Callable[[int], JSON | None]


def _nobody(user_id: int) -> JSON | None:
    return None


@dataclass(frozen=True, slots=True)
class ParsedText:
    """What the recipient sees: the visible text and its formatting entities."""

    text: str
    entities: list[JSON] = field(default_factory=list)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of ``text`` an entity covers (entity offsets count UTF-16 code units)."""
    return text.encode("utf-16-le")[offset * 2 : (offset + length) * 2].decode("utf-16-le")


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def parse_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


class _Output:
    """The visible text as it is built, with its length in UTF-16 units."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.units = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.units += sum(_units(char) for char in text)

    def text(self) -> str:
        return "".join(self.parts)


def check_link(url: str) -> str | None:
    """The URL Telegram would link to, or None when it would drop the link (TDLib's check_link).

    http, https, tg and ton links are kept; a bare host gets ``http://``; other schemes are not
    links (the text stays, unlinked).
    """
    url = url.strip()
    if not url or any(char in _SPACES for char in url):
        return None
    scheme = _SCHEME_RE.match(url)
    if scheme is None or "//" not in url[: scheme.end() + 2]:
        return f"http://{url}" if _HOST_RE.match(url) else None
    name = scheme.group(1).lower()
    if name in ("tg", "ton"):
        return url if len(url) > scheme.end() + 2 else None
    if name not in ("http", "https"):
        return None
    rest = url[scheme.end() + 2 :]
    return url if _HOST_RE.match(rest) or rest.startswith("localhost") else None


def _link_entity(url: str, offset: int, length: int, users: UserLookup) -> JSON | None:
    mention = _USER_LINK_RE.fullmatch(url)
    if mention is not None:
        user = users(int(mention.group(1)))
        if user is None:
            return None  # Telegram mentions only users the bot can see
        return {"type": "text_mention", "offset": offset, "length": length, "user": user}
    checked = check_link(url)
    if checked is None:
        return None
    return {"type": "text_link", "offset": offset, "length": length, "url": checked}


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


# --------------------------------------------------------------------------- HTML


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an HTML entity at ``pos`` stands for and where it ends (``;`` optional)."""
    end = pos + 1
    if text.startswith("#", end):
        end += 1
        hexadecimal = text.startswith(("x", "X"), end)
        if hexadecimal:
            end += 1
        start = end
        digits = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
        while end < len(text) and text[end] in digits and end - start < 8:
            end += 1
        if end == start:
            return None
        code = int(text[start:end], 16 if hexadecimal else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        char = chr(code)
    else:
        while end < len(text) and text[end].isascii() and text[end].isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(text[pos + 1 : end])
        if named is None:
            return None
        char = named
    if text.startswith(";", end):
        end += 1
    return char, end


def _decode_attribute(value: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(value):
        if value[index] == "&":
            decoded = _decode_entity(value, index)
            if decoded is not None:
                out.append(decoded[0])
                index = decoded[1]
                continue
        out.append(value[index])
        index += 1
    return "".join(out)


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    offset: int
    text_start: int  # index into the visible text's parts, for <a> without href
    expandable: bool = False


class _HtmlParser:
    def __init__(self, text: str, *, strict: bool, users: UserLookup) -> None:
        self.text = text
        self.strict = strict
        self.users = users
        self.out = _Output()
        self.entities: list[JSON] = []
        self.stack: list[_OpenTag] = []
        self.pos = 0

    def error(self, detail: str, index: int) -> ApiError:
        return parse_error(f"{detail} at byte offset {_byte_offset(self.text, index)}")

    def char(self, index: int) -> str:
        return self.text[index] if index < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.char(self.pos) in _SPACES and self.pos < len(self.text):
            self.pos += 1

    def parse(self) -> ParsedText:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "&":
                decoded = _decode_entity(text, self.pos)
                if decoded is not None:
                    self.out.add(decoded[0])
                    self.pos = decoded[1]
                    continue
                if self.strict:
                    raise self.error('Character "&" must be escaped as "&amp;"', self.pos)
            if char != "<":
                self.out.add(char)
                self.pos += 1
                continue
            if self.char(self.pos + 1) == "/":
                self.end_tag()
            else:
                self.start_tag()
        if self.stack:
            name = self.stack[-1].name
            raise parse_error(f'Can\'t find end tag corresponding to start tag "{name}"')
        return ParsedText(self.out.text(), self.entities)

    def start_tag(self) -> None:
        begin = self.pos
        self.pos += 1
        while self.pos < len(self.text) and self.char(self.pos) not in _TAG_END:
            self.pos += 1
        if self.pos >= len(self.text):
            raise self.error("Unclosed start tag", begin)
        name = self.text[begin + 1 : self.pos].lower()
        if name not in _HTML_TAGS:
            raise self.error(f'Unsupported start tag "{name}"', begin)
        argument, expandable = "", False
        while self.char(self.pos) != ">":
            self.skip_spaces()
            if self.pos >= len(self.text):
                raise self.error("Unclosed start tag", begin)
            if self.char(self.pos) == ">":
                break
            attribute, value = self.attribute(name, begin)
            known = (name, attribute) in _HTML_ATTRIBUTES
            if not known and self.strict:
                raise self.error(f'Unsupported attribute "{attribute}" in the tag "{name}"', begin)
            if name == "a" or name == "tg-emoji":
                argument = value if known else argument
            elif name == "span" and known:
                argument = value.removeprefix("tg-") if value.startswith("tg-") else ""
            elif name == "code" and known:
                if value.startswith("language-"):
                    argument = value.removeprefix("language-")
                elif self.strict:
                    raise self.error('The class of a "code" tag must be "language-NAME"', begin)
            elif name == "blockquote" and known:
                expandable = True
        self.pos += 1
        if name == "span" and argument != "spoiler":
            raise self.error('Tag "span" must have class "tg-spoiler"', begin)
        self.stack.append(_OpenTag(name, argument, self.out.units, len(self.out.parts), expandable))

    def attribute(self, tag: str, begin: int) -> tuple[str, str]:
        start = self.pos
        while self.pos < len(self.text) and self.char(self.pos) not in _ATTRIBUTE_END:
            self.pos += 1
        name = self.text[start : self.pos].lower()
        if not name:
            raise self.error(f'Empty attribute name in the tag "{tag}"', begin)
        self.skip_spaces()
        if self.char(self.pos) != "=":
            if tag == "blockquote" and name == "expandable":
                return name, ""
            raise self.error(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}"', begin
            )
        self.pos += 1
        self.skip_spaces()
        if self.pos >= len(self.text):
            raise self.error(f'Unclosed start tag "{tag}"', begin)
        quote = self.char(self.pos)
        if quote in ("'", '"'):
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise self.error("Unclosed start tag", begin)
            value = _decode_attribute(self.text[self.pos + 1 : end])
            self.pos = end + 1
        else:
            token = self.pos
            while self.char(self.pos).isalnum() or self.char(self.pos) in (".", "-"):
                self.pos += 1
            value = self.text[token : self.pos].lower()
            if self.char(self.pos) not in _TAG_END:
                raise self.error("Unexpected end of name token", token)
        return name, value

    def end_tag(self) -> None:
        begin = self.pos
        if not self.stack:
            raise self.error("Unexpected end tag", begin)
        self.pos += 2
        while self.pos < len(self.text) and self.char(self.pos) not in _TAG_END:
            self.pos += 1
        end_name = self.text[begin + 2 : self.pos].lower()
        self.skip_spaces()
        if self.char(self.pos) != ">":
            raise self.error("Unclosed end tag", begin)
        self.pos += 1
        tag = self.stack.pop()
        if end_name and end_name != tag.name:
            offset = _byte_offset(self.text, begin)
            raise parse_error(
                f'Unmatched end tag at byte offset {offset}, expected "</{tag.name}>", '
                f'found "</{end_name}>"'
            )
        length = self.out.units - tag.offset
        if length > 0:
            self.close(tag, length)

    def close(self, tag: _OpenTag, length: int) -> None:
        offset, entities = tag.offset, self.entities
        last = entities[-1] if entities else None
        same_span = last is not None and last["offset"] == offset and last["length"] == length
        if tag.name in _HTML_SIMPLE:
            entities.append({"type": _HTML_SIMPLE[tag.name], "offset": offset, "length": length})
        elif tag.name == "a":
            url = tag.argument or "".join(self.out.parts[tag.text_start :])
            entity = _link_entity(url, offset, length, self.users)
            if entity is not None:
                entities.append(entity)
        elif tag.name == "tg-emoji":
            if not tag.argument.isdigit() or int(tag.argument) == 0:
                raise parse_error("Invalid custom emoji identifier specified")
            entities.append(
                {"type": "custom_emoji", "offset": offset, "length": length,
                 "custom_emoji_id": tag.argument}
            )  # fmt: skip
        elif tag.name == "pre":
            if same_span and last is not None and last["type"] == "code" and "language" in last:
                last["type"] = "pre"
            else:
                entities.append({"type": "pre", "offset": offset, "length": length})
        elif tag.name == "code":
            if same_span and last is not None and last["type"] == "pre" and tag.argument:
                last["language"] = tag.argument
            else:
                entity = {"type": "code", "offset": offset, "length": length}
                if tag.argument:
                    entity["language"] = tag.argument  # only kept if a <pre> wraps it
                entities.append(entity)
        else:  # blockquote
            kind = "expandable_blockquote" if tag.expandable else "blockquote"
            entities.append({"type": kind, "offset": offset, "length": length})


# --------------------------------------------------------------------------- MarkdownV2


@dataclass(slots=True)
class _OpenEntity:
    type: str
    offset: int
    byte_index: int
    text_start: int
    argument: str = ""


class _MarkdownV2Parser:
    def __init__(self, text: str, users: UserLookup) -> None:
        self.text = text
        self.users = users
        self.out = _Output()
        self.entities: list[JSON] = []
        self.stack: list[_OpenEntity] = []
        self.quote: _OpenEntity | None = None
        self.quote_end_units = 0  # visible length before the newline that ends a quote line

    def char(self, index: int) -> str:
        return self.text[index] if 0 <= index < len(self.text) else ""

    def reserved_error(self, char: str) -> ApiError:
        return parse_error(
            f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
        )

    def parse(self) -> ParsedText:
        text, index = self.text, 0
        while index < len(text):
            char = text[index]
            if index == 0 or text[index - 1] == "\n":
                index = self.line_start(index)
                if index >= len(text):
                    break
                char = text[index]
            nxt = self.char(index + 1)
            if char == "\\" and nxt and 0 < ord(nxt) <= 126:
                self.out.add(nxt)
                index += 2
                continue
            in_code = bool(self.stack) and self.stack[-1].type in ("code", "pre")
            reserved = "`" if in_code else _MD2_RESERVED
            if char not in reserved:
                if char == "\n" and self.quote is not None:
                    self.quote_end_units = self.out.units
                self.out.add(char)
                index += 1
                continue
            if self.ends_expandable_quote(index):
                self.quote_end_units = self.out.units
                self.close_quote()
                index += 2
                continue
            if self.stack and self.ends(self.stack[-1], index):
                index = self.close(index)
            else:
                index = self.open(index)
        if self.stack:
            entity = self.stack[-1]
            name = _MD2_TYPE_NAMES[entity.type]
            raise parse_error(f"Can't find end of {name} entity at byte offset {entity.byte_index}")
        if self.quote is not None:
            self.quote_end_units = self.out.units
            self.close_quote()
        return ParsedText(self.out.text(), self.entities)

    def ends_expandable_quote(self, index: int) -> bool:
        """``||`` at the end of a line closes an expandable block quote (``**>``)."""
        return (
            self.quote is not None
            and self.quote.argument == "expandable"
            and not self.stack
            and self.text.startswith("||", index)
            and self.char(index + 2) in ("", "\n")
        )

    def line_start(self, index: int) -> int:
        """Open, continue or close a ``>`` block quote at the start of a line."""
        text = self.text
        if self.stack and self.stack[-1].type in ("code", "pre"):
            return index
        expandable = text.startswith("**>", index) and self.quote is None
        if text.startswith(">", index) or expandable:
            if self.quote is None:
                if self.stack:
                    raise self.reserved_error(">")
                self.quote = _OpenEntity(
                    "blockquote", self.out.units, _byte_offset(text, index), 0,
                    "expandable" if expandable else "",
                )  # fmt: skip
            return index + (3 if expandable else 1)
        if self.quote is not None and index > 0:
            self.close_quote()
        return index

    def close_quote(self) -> None:
        quote, self.quote = self.quote, None
        if quote is None:
            return
        length = self.quote_end_units - quote.offset
        if length > 0:
            kind = "expandable_blockquote" if quote.argument else "blockquote"
            self.entities.append({"type": kind, "offset": quote.offset, "length": length})

    def ends(self, entity: _OpenEntity, index: int) -> bool:
        char, nxt = self.text[index], self.char(index + 1)
        return {
            "bold": char == "*",
            "italic": char == "_" and nxt != "_",
            "underline": char == "_" and nxt == "_",
            "strikethrough": char == "~",
            "spoiler": char == "|" and nxt == "|",
            "code": char == "`",
            "pre": self.text.startswith("```", index),
            "text_link": char == "]",
            "custom_emoji": char == "]",
        }[entity.type]

    def open(self, index: int) -> int:
        text, char, nxt = self.text, self.text[index], self.char(index + 1)
        start = index
        argument = ""
        if char == "_":
            kind = "underline" if nxt == "_" else "italic"
            index += 2 if nxt == "_" else 1
        elif char == "*":
            kind, index = "bold", index + 1
        elif char == "~":
            kind, index = "strikethrough", index + 1
        elif char == "|" and nxt == "|":
            kind, index = "spoiler", index + 2
        elif char == "[":
            kind, index = "text_link", index + 1
        elif char == "!" and nxt == "[":
            kind, index = "custom_emoji", index + 2
        elif char == "`" and text.startswith("```", index):
            kind, index = "pre", index + 3
            language_end = index
            while language_end < len(text) and text[language_end] not in _LANGUAGE_END:
                language_end += 1
            if language_end != index and self.char(language_end) not in ("", "`"):
                argument, index = text[index:language_end], language_end
            if self.char(index) in ("\n", "\r"):
                pair = self.char(index + 1) in ("\n", "\r") and self.char(index + 1) != text[index]
                index += 2 if pair else 1
        elif char == "`":
            kind, index = "code", index + 1
        else:
            raise self.reserved_error(char)
        self.stack.append(
            _OpenEntity(kind, self.out.units, _byte_offset(text, start), len(self.out.parts),
                        argument)
        )  # fmt: skip
        return index

    def close(self, index: int) -> int:
        entity = self.stack.pop()
        text = self.text
        url = ""
        index += {"underline": 2, "spoiler": 2, "pre": 3}.get(entity.type, 1)
        if entity.type in ("text_link", "custom_emoji"):
            if self.char(index) == "(":
                index += 1
                url_begin = index
                chars: list[str] = []
                while index < len(text) and text[index] != ")":
                    nxt = self.char(index + 1)
                    if text[index] == "\\" and nxt and 0 < ord(nxt) <= 126:
                        chars.append(nxt)
                        index += 2
                        continue
                    chars.append(text[index])
                    index += 1
                if index >= len(text):
                    offset = _byte_offset(text, url_begin)
                    raise parse_error(f"Can't find end of a URL at byte offset {offset}")
                index += 1
                url = "".join(chars)
            elif entity.type == "text_link":
                url = "".join(self.out.parts[entity.text_start :])
        length = self.out.units - entity.offset
        if entity.type == "custom_emoji":
            emoji = _EMOJI_LINK_RE.fullmatch(url)
            if emoji is None:
                raise parse_error("Custom emoji entity must contain a tg://emoji URL")
            if length > 0:
                self.entities.append(
                    {"type": "custom_emoji", "offset": entity.offset, "length": length,
                     "custom_emoji_id": emoji.group(1)}
                )  # fmt: skip
            return index
        if length <= 0:
            return index
        if entity.type == "text_link":
            link = _link_entity(url, entity.offset, length, self.users)
            if link is not None:
                self.entities.append(link)
            return index
        found: JSON = {"type": entity.type, "offset": entity.offset, "length": length}
        if entity.type == "pre" and entity.argument:
            found["language"] = entity.argument
        self.entities.append(found)
        return index


# --------------------------------------------------------------------------- legacy Markdown


def _parse_markdown(text: str, users: UserLookup) -> ParsedText:
    out = _Output()
    entities: list[JSON] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1 : index + 2] in ("_", "*", "`", "["):
            out.add(text[index + 1])
            index += 2
            continue
        if char not in "_*`[":
            out.add(char)
            index += 1
            continue
        begin = index
        end_char = "]" if char == "[" else char
        index += 1
        is_pre = char == "`" and text.startswith("``", index)
        language = ""
        if is_pre:
            index += 2
            language_end = index
            while language_end < len(text) and text[language_end] not in _LANGUAGE_END:
                language_end += 1
            if language_end != index and language_end < len(text) and text[language_end] != "`":
                language, index = text[index:language_end], language_end
            if text[index : index + 1] in ("\n", "\r"):
                pair = text[index + 1 : index + 2] in ("\n", "\r")
                index += 2 if pair and text[index + 1] != text[index] else 1
        offset = out.units
        start_part = len(out.parts)
        while index < len(text) and (
            text[index] != end_char or (is_pre and not text.startswith("```", index))
        ):
            out.add(text[index])
            index += 1
        if index >= len(text):
            offset_bytes = _byte_offset(text, begin)
            raise parse_error(
                f"Can't find end of the entity starting at byte offset {offset_bytes}"
            )
        length = out.units - offset
        if char == "[":
            url = "".join(out.parts[start_part:])
            if text[index + 1 : index + 2] == "(":
                close = text.find(")", index + 2)
                url = text[index + 2 : close if close >= 0 else len(text)]
                index = close if close >= 0 else len(text) - 1
        if length > 0:
            if char == "[":
                link = _link_entity(url, offset, length, users)
                if link is not None:
                    entities.append(link)
            elif char == "`":
                entity: JSON = {"type": "pre" if is_pre else "code", "offset": offset}
                entity["length"] = length
                if language:
                    entity["language"] = language
                entities.append(entity)
            else:
                kind = "italic" if char == "_" else "bold"
                entities.append({"type": kind, "offset": offset, "length": length})
        index += 3 if is_pre else 1
    return ParsedText(out.text(), entities)


# --------------------------------------------------------------------------- public entry point


def _trim(parsed: ParsedText) -> ParsedText:
    """Drop leading and trailing whitespace, as Telegram does, moving the entities along."""
    text = parsed.text
    stripped_left = text.lstrip("".join(_SPACES))
    lead = utf16_len(text) - utf16_len(stripped_left)
    stripped = stripped_left.rstrip("".join(_SPACES))
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
        parsed = _HtmlParser(text, strict=strict, users=known).parse()
    elif mode == "markdownv2":
        parsed = _MarkdownV2Parser(text, known).parse()
    elif mode == "markdown":
        parsed = _parse_markdown(text, known)
    elif mode == "":
        parsed = ParsedText(text)
    else:
        raise bad_request("unsupported parse_mode")
    entities = sorted(
        _drop_nested_in_code(parsed.entities), key=lambda e: (e["offset"], -e["length"])
    )
    return _trim(ParsedText(parsed.text, entities))


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text as the recipient sees it; raises the 400 Telegram gives for malformed markup."""
    return parse_text(text, parse_mode).text
