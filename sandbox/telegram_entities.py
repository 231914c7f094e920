"""What Telegram's text parsers share: the parsed result, UTF-16 counting, links, errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.telegram_errors import JSON, ApiError, bad_request

SPACES = frozenset(" \t\r\n\v\f")
_USER_LINK_RE = re.compile(r"tg://user\?id=(\d{1,15})", re.IGNORECASE)
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+(?::\d+)?")

UserLookup = Callable[[int], JSON | None]


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


def char_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def parse_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


class Output:
    """The visible text as it is built, with its length in UTF-16 units."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.units = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.units += sum(char_units(char) for char in text)

    def text(self) -> str:
        return "".join(self.parts)


def check_link(url: str) -> str | None:
    """The URL Telegram would link to, or None when it would drop the link (TDLib's check_link).

    http, https, tg and ton links are kept; a bare host gets ``http://``; other schemes are not
    links (the text stays, unlinked).
    """
    url = url.strip()
    if not url or any(char in SPACES for char in url):
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


def link_entity(url: str, offset: int, length: int, users: UserLookup) -> JSON | None:
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


def byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())
