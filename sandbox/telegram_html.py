"""Telegram's HTML parse mode, as TDLib parses it (see :mod:`sandbox.telegram_markup`)."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.telegram_entities import (
    SPACES,
    Output,
    ParsedText,
    UserLookup,
    byte_offset,
    link_entity,
    parse_error,
)
from sandbox.telegram_errors import JSON, ApiError

_TAG_END = SPACES | {">"}
_ATTRIBUTE_END = SPACES | {"=", ">"}
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
        self.out = Output()
        self.entities: list[JSON] = []
        self.stack: list[_OpenTag] = []
        self.pos = 0

    def error(self, detail: str, index: int) -> ApiError:
        return parse_error(f"{detail} at byte offset {byte_offset(self.text, index)}")

    def char(self, index: int) -> str:
        return self.text[index] if index < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.char(self.pos) in SPACES and self.pos < len(self.text):
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
            offset = byte_offset(self.text, begin)
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
            entity = link_entity(url, offset, length, self.users)
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


def parse_html(text: str, *, strict: bool, users: UserLookup) -> ParsedText:
    return _HtmlParser(text, strict=strict, users=users).parse()
