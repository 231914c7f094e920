"""Telegram's MarkdownV2 and legacy Markdown parse modes, as TDLib parses them."""

from __future__ import annotations

import re
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

_LANGUAGE_END = SPACES | {"`"}
_MD2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MD2_TYPE_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji", "blockquote": "BlockQuote",
    "expandable_blockquote": "ExpandableBlockQuote",
}  # fmt: skip
_EMOJI_LINK_RE = re.compile(r"tg://emoji\?id=(\d{1,20})", re.IGNORECASE)


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
        self.out = Output()
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
                    "blockquote", self.out.units, byte_offset(text, index), 0,
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
            _OpenEntity(kind, self.out.units, byte_offset(text, start), len(self.out.parts),
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
                    offset = byte_offset(text, url_begin)
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
            link = link_entity(url, entity.offset, length, self.users)
            if link is not None:
                self.entities.append(link)
            return index
        found: JSON = {"type": entity.type, "offset": entity.offset, "length": length}
        if entity.type == "pre" and entity.argument:
            found["language"] = entity.argument
        self.entities.append(found)
        return index


def parse_markdown_v2(text: str, users: UserLookup) -> ParsedText:
    return _MarkdownV2Parser(text, users).parse()


# --------------------------------------------------------------------------- legacy Markdown


def parse_markdown(text: str, users: UserLookup) -> ParsedText:
    out = Output()
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
            offset_bytes = byte_offset(text, begin)
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
                link = link_entity(url, offset, length, users)
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
