"""Rich message bodies: a small Markdown subset or Telegram's HTML subset, checked and converted.

A body is written in one of three formats:

- ``text`` (the default): plain text, escaped for Telegram as it always was;
- ``markdown``: ``**bold**`` (or ``__bold__``), ``*italic*`` (or ``_italic_``), ``` `code` ```,
  ``[label](https://…)`` and line breaks as typed; a backslash makes the next ``\\*_`[]()``
  literal. A ``*`` or ``_`` that cannot open (``5 * 3``, ``snake_case``) is plain text; one that
  opens and is never closed is an error;
- ``html``: exactly Telegram's tags (b strong i em u ins s strike del, ``span
  class="tg-spoiler"``, tg-spoiler, ``a href``, code, pre with an optional ``code
  class="language-…"``, blockquote with an optional ``expandable``), balanced, with Telegram's
  nesting rules; ``href`` only ``http://``, ``https://`` or ``tg://``; entities ``&lt; &gt;
  &amp; &quot;`` and numeric ones.

Both rich formats become Telegram HTML (:func:`telegram_html`), which is what the Telegram channel
sends and what the email HTML part, the email text part and the SMS text are made from. Invalid
markup raises :class:`MarkupError` naming the line and column (and the character offset).

Placeholders for per-recipient rendering (``{{ … }}``, ``{% … %}``, ``{# … #}``) are opaque: never
formatted inside, never escaped, copied as they are into every output, so a Jinja2 environment
(autoescaping for the HTML outputs) can render the converted text afterwards.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- formats, buttons and errors ---------------------------------------------------------------


class Format(enum.StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


FORMATS = tuple(f.value for f in Format)
MAX_BUTTON_ROWS = 3
MAX_BUTTONS_PER_ROW = 3
MAX_BUTTON_LABEL = 64
MAX_URL = 2048
URL_SCHEMES = ("http://", "https://", "tg://")
# Telegram shows at most this many entities of a message; those after it lose their formatting.
MAX_ENTITIES = 100
TELEGRAM_TEXT_LIMIT = 4096


class MarkupError(ValueError):
    """The body's markup is invalid; ``offset`` is the character index of the problem."""

    def __init__(self, source: str, offset: int, reason: str) -> None:
        self.offset = offset
        self.line = source.count("\n", 0, offset) + 1
        self.column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        self.reason = reason
        super().__init__(f"line {self.line}, column {self.column}: {reason}")

    @property
    def details(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "offset": self.offset}


class ButtonError(ValueError):
    """A button is not acceptable; ``field`` names it (``buttons[0][1].url``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Button:
    label: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"label": self.label, "url": self.url}


Buttons = tuple[tuple[Button, ...], ...]
# Renders placeholders in a converted text (per recipient): the personalisation's hook.
Render = Callable[[str], str]

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*(?::\d+)?")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a link or button (None when it can): http, https or tg only."""
    if not url:
        return "the URL is empty"
    if len(url) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    if any(char.isspace() or ord(char) < 0x20 for char in url):
        return "the URL contains a space or a control character"
    lowered = url.lower()
    scheme = next((s for s in URL_SCHEMES if lowered.startswith(s)), None)
    if scheme is None:
        return "only http://, https:// and tg:// URLs are allowed"
    rest = url[len(scheme) :]
    if scheme == "tg://":
        return None if rest else "the tg:// URL is empty"
    host = _HOST.match(rest)
    if host is None or (host.end() < len(rest) and rest[host.end()] not in "/?#"):
        return "the URL has no valid host name"
    return None


def check_buttons(rows: Sequence[Sequence[Mapping[str, Any] | Button]]) -> Buttons:
    """Validate rows of ``{label, url}`` (at most 3 rows of 3); the first problem is raised."""
    if len(rows) > MAX_BUTTON_ROWS:
        raise ButtonError("buttons", f"at most {MAX_BUTTON_ROWS} rows of buttons")
    checked: list[tuple[Button, ...]] = []
    for r, row in enumerate(rows):
        if not row:
            raise ButtonError(f"buttons[{r}]", "a row of buttons is empty")
        if len(row) > MAX_BUTTONS_PER_ROW:
            raise ButtonError(f"buttons[{r}]", f"at most {MAX_BUTTONS_PER_ROW} buttons in a row")
        buttons: list[Button] = []
        for c, raw in enumerate(row):
            label, url = (
                (raw.label, raw.url)
                if isinstance(raw, Button)
                else (raw.get("label", ""), raw.get("url", ""))
            )
            if not isinstance(label, str) or not label.strip():
                raise ButtonError(f"buttons[{r}][{c}].label", "a button needs a label")
            if len(label) > MAX_BUTTON_LABEL:
                raise ButtonError(
                    f"buttons[{r}][{c}].label", f"longer than {MAX_BUTTON_LABEL} characters"
                )
            problem = url_problem(url) if isinstance(url, str) else "the URL must be a string"
            if problem is not None:
                raise ButtonError(f"buttons[{r}][{c}].url", problem)
            buttons.append(Button(label.strip(), url))
        checked.append(tuple(buttons))
    return tuple(checked)


def parse_button_lines(lines: Iterable[str]) -> Buttons:
    """Buttons as people type them: one row per line, buttons separated by ``|``, each the label
    then its URL (the last word): ``Our site https://example.com | Call us tg://resolve?domain=x``.
    """
    rows: list[list[Button]] = []
    for r, line in enumerate(line for line in lines if line.strip()):
        row: list[Button] = []
        for c, cell in enumerate(line.split("|")):
            label, _, url = cell.strip().rpartition(" ")
            if not label.strip():
                raise ButtonError(f"buttons[{r}][{c}]", f"write the label, then the URL: {cell!r}")
            row.append(Button(label.strip(), url))
        rows.append(row)
    return check_buttons(rows)


def buttons_json(buttons: Buttons) -> list[list[dict[str, str]]]:
    return [[b.to_json() for b in row] for row in buttons]


def buttons_from_json(value: Any) -> Buttons:
    """Buttons as stored (``messages.extra["buttons"]``); anything malformed counts as none."""
    if not isinstance(value, list):
        return ()
    rows: list[tuple[Button, ...]] = []
    for row in value:
        if isinstance(row, list):
            buttons = tuple(
                Button(str(b["label"]), str(b["url"]))
                for b in row
                if isinstance(b, dict) and "label" in b and "url" in b
            )
            if buttons:
                rows.append(buttons)
    return tuple(rows)


def format_from(value: Any) -> Format:
    """The stored format (``messages.extra["format"]``); anything unknown is plain text."""
    return Format(value) if value in FORMATS else Format.TEXT


def content_of(extra: Mapping[str, Any]) -> tuple[Format, Buttons]:
    """A stored message's format and buttons, from its ``extra`` (``format``, ``buttons``)."""
    return format_from(extra.get("format")), buttons_from_json(extra.get("buttons"))


def inline_keyboard(buttons: Buttons) -> dict[str, Any] | None:
    """The Bot API ``reply_markup`` for URL buttons (an InlineKeyboardMarkup), or None."""
    if not buttons:
        return None
    return {"inline_keyboard": [[{"text": b.label, "url": b.url} for b in row] for row in buttons]}


# --- placeholders --------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _placeholder_at(text: str, index: int) -> int:
    """The end of the placeholder starting at ``index``, or -1."""
    if text.startswith(("{{", "{%", "{#"), index):
        match = _PLACEHOLDER.match(text, index)
        if match is not None:
            return match.end()
    return -1


def escape_text(text: str) -> str:
    """Escape ``<``, ``>`` and ``&`` for Telegram HTML, leaving placeholders as they are."""
    out: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(html.escape(text[last : match.start()], quote=False))
        out.append(match.group())
        last = match.end()
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


# --- Markdown -> Telegram HTML -------------------------------------------------------------------

_MD_ESCAPABLE = frozenset("\\*_`[]()~")
_MD_TAGS = {"**": "b", "__": "b", "*": "i", "_": "i"}


@dataclass
class _Open:
    marker: str
    offset: int
    out_index: int


class _Markdown:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, offset: int, reason: str) -> MarkupError:
        return MarkupError(self.source, offset, reason)

    def convert(self, start: int, end: int, *, in_link: bool) -> str:
        s = self.source
        out: list[str] = []
        stack: list[_Open] = []
        i = start
        while i < end:
            placeholder_end = _placeholder_at(s, i)
            if 0 <= placeholder_end <= end:
                out.append(s[i:placeholder_end])
                i = placeholder_end
                continue
            char = s[i]
            if char == "\\" and i + 1 < end and s[i + 1] in _MD_ESCAPABLE:
                out.append(html.escape(s[i + 1], quote=False))
                i += 2
            elif char == "`":
                close = s.find("`", i + 1, end)
                if close < 0:
                    raise self.error(i, "unclosed ` (write \\` for a literal backquote)")
                if in_link:
                    raise self.error(i, "code cannot be part of a link's label")
                if close == i + 1:
                    raise self.error(i, "empty code span ``")
                out.append(f"<code>{escape_text(s[i + 1 : close])}</code>")
                i = close + 1
            elif char == "[":
                i = self.link(i, end, out, in_link=in_link)
            elif char in "*_":
                i = self.delimiter(i, end, out, stack)
            else:
                out.append(html.escape(char, quote=False))
                i += 1
        if stack:
            top = stack[-1]
            raise self.error(
                top.offset, f"unclosed {top.marker} (write \\{top.marker[0]} for a literal one)"
            )
        return "".join(out)

    def delimiter(self, i: int, end: int, out: list[str], stack: list[_Open]) -> int:
        s = self.source
        char = s[i]
        marker = char * 2 if s.startswith(char * 2, i) and i + 1 < end else char
        before = s[i - 1] if i > 0 else " "
        after = s[i + len(marker)] if i + len(marker) < end else " "
        can_open = not after.isspace()
        can_close = not before.isspace()
        if char == "_":  # no emphasis inside words: snake_case stays as written
            can_open = can_open and not before.isalnum()
            can_close = can_close and not after.isalnum()
        open_markers = [o.marker for o in stack]
        if can_close and marker in open_markers:
            if stack[-1].marker != marker:
                inner = stack[-1]
                raise self.error(
                    i, f"{marker} closes before {inner.marker} (opened at column "
                    f"{MarkupError(s, inner.offset, '').column}) is closed"
                )  # fmt: skip
            opened = stack.pop()
            if opened.out_index == len(out) - 1:
                raise self.error(opened.offset, f"nothing between {marker} and {marker}")
            out.append(f"</{_MD_TAGS[marker]}>")
        elif (
            can_open
            and marker not in open_markers
            and _MD_TAGS[marker] not in (_MD_TAGS[m] for m in open_markers)
        ):
            stack.append(_Open(marker, i, len(out)))
            out.append(f"<{_MD_TAGS[marker]}>")
        else:
            out.append(marker)
        return i + len(marker)

    def link(self, i: int, end: int, out: list[str], *, in_link: bool) -> int:
        """``[label](url)``; a ``[`` that starts no link is plain text."""
        s = self.source
        depth, j = 0, i + 1
        while j < end:
            if s[j] == "\\":
                j += 2
                continue
            if s[j] == "[":
                depth += 1
            elif s[j] == "]":
                if depth == 0:
                    break
                depth -= 1
            elif s[j] == "\n" and s.startswith("\n", j + 1):
                j = end  # a link's label does not span paragraphs
                break
            j += 1
        if j >= end or not s.startswith("(", j + 1):
            out.append("[")
            return i + 1
        close = s.find(")", j + 2, end)
        if close < 0:
            raise self.error(j + 1, "unclosed ( of a link: write [label](https://…)")
        url = s[j + 2 : close].strip()
        if in_link:
            raise self.error(i, "a link cannot contain another link")
        problem = url_problem(url)
        if problem is not None:
            raise self.error(j + 2, f"bad link: {problem}")
        if j == i + 1:
            raise self.error(i, "a link needs a label: [label](url)")
        label = self.convert(i + 1, j, in_link=True)
        out.append(f'<a href="{html.escape(url, quote=True)}">{label}</a>')
        return close + 1


def markdown_to_html(source: str) -> str:
    """The Markdown subset as Telegram HTML; :class:`MarkupError` when it is malformed."""
    return _Markdown(source).convert(0, len(source), in_link=False)


# --- Telegram HTML: tokens, validation ------------------------------------------------------------

_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_NAMED = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"'}
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>", re.DOTALL)
_ATTRIBUTE = re.compile(
    r"""\s*([A-Za-z][A-Za-z0-9-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)
TAGS = (
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
    "pre", "blockquote",
)  # fmt: skip
_FORMATTING = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler"}
)


@dataclass(frozen=True)
class Token:
    """A piece of Telegram HTML: ``kind`` is ``text`` (one visible character, ``raw`` as written),
    ``placeholder``, ``open`` or ``close`` (``name`` the tag, ``attrs`` decoded)."""

    kind: str
    raw: str
    offset: int
    visible: str = ""
    name: str = ""
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def units(self) -> int:
        """UTF-16 code units this token adds to the visible text."""
        text = self.raw if self.kind == "placeholder" else self.visible
        return len(text.encode("utf-16-le")) // 2

    def attr(self, name: str) -> str | None:
        return next((v for k, v in self.attrs if k == name), None)


def _decode(raw: str) -> str:
    return _NAMED.get(raw) or chr(int(raw[3:-1], 16) if raw[2] in "xX" else int(raw[2:-1]))


def _decode_all(value: str) -> str:
    return _ENTITY.sub(lambda m: _decode(m.group()), value)


def _check_tag(source: str, token: Token, stack: list[Token]) -> None:
    name, attrs, offset = token.name, dict(token.attrs), token.offset
    names = [t.name for t in stack]
    if len(attrs) != len(token.attrs):
        raise MarkupError(source, offset, f"an attribute is repeated in <{name}>")
    allowed: frozenset[str] = frozenset()
    if name == "a":
        allowed = frozenset({"href"})
        href = attrs.get("href")
        if href is None:
            raise MarkupError(source, offset, "<a> needs an href")
        problem = url_problem(href)
        if problem is not None:
            raise MarkupError(source, offset, f"bad href: {problem}")
    elif name == "span":
        allowed = frozenset({"class"})
        if attrs.get("class") != "tg-spoiler":
            raise MarkupError(source, offset, '<span> must be <span class="tg-spoiler">')
    elif name == "code":
        allowed = frozenset({"class"})
        language = attrs.get("class")
        if language is not None and not (
            re.fullmatch(r"language-[A-Za-z0-9_+#.-]+", language) and names[-1:] == ["pre"]
        ):
            raise MarkupError(
                source, offset, 'only <code class="language-…"> directly inside <pre> has a class'
            )
    elif name == "blockquote":
        allowed = frozenset({"expandable"})
        if attrs.get("expandable", "") != "":
            raise MarkupError(source, offset, "expandable takes no value")
        if "blockquote" in names:
            raise MarkupError(source, offset, "a blockquote cannot be inside another")
    extra = set(attrs) - allowed
    if extra:
        raise MarkupError(source, offset, f'<{name}> cannot have the attribute "{min(extra)}"')
    if "code" in names:
        raise MarkupError(source, offset, "<code> cannot contain other tags")
    if "pre" in names and not (name == "code" and names[-1] == "pre"):
        raise MarkupError(source, offset, '<pre> can contain only one <code class="language-…">')
    if name == "a" and "a" in names:
        raise MarkupError(source, offset, "a link cannot contain another link")
    if name in ("code", "pre"):
        outer = next((n for n in reversed(names) if n in _FORMATTING or n == "a"), None)
        if outer is not None:
            raise MarkupError(source, offset, f"<{outer}> cannot contain <{name}>")


def tokenize_html(source: str) -> list[Token]:
    """Telegram HTML as tokens, checked: :class:`MarkupError` at the first problem."""
    tokens: list[Token] = []
    stack: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        placeholder_end = _placeholder_at(source, i)
        if placeholder_end >= 0:
            tokens.append(Token("placeholder", source[i:placeholder_end], i))
            i = placeholder_end
            continue
        char = source[i]
        if char == "&":
            entity = _ENTITY.match(source, i)
            if entity is None:
                raise MarkupError(
                    source, i, 'write "&" as &amp; (entities: &lt; &gt; &amp; &quot; &#NN;)'
                )
            raw = entity.group()
            decoded = _decode(raw)
            if decoded == "\0" or 0xD800 <= ord(decoded) <= 0xDFFF:
                raise MarkupError(source, i, f"{raw} is not a character")
            tokens.append(Token("text", raw, i, decoded))
            i = entity.end()
            continue
        if char != "<":
            tokens.append(Token("text", char, i, char))
            i += 1
            continue
        tag = _TAG.match(source, i)
        if tag is None:
            raise MarkupError(source, i, 'write "<" as &lt; (or finish the tag)')
        closing, name = tag.group(1), tag.group(2).lower()
        attr_text, self_closing = tag.group(3), tag.group(4)
        if name not in TAGS:
            hint = " (use a line break)" if name == "br" else ""
            raise MarkupError(
                source, i, f"<{name}> is not allowed{hint}; Telegram allows {', '.join(TAGS)}"
            )
        if self_closing:
            raise MarkupError(source, i, f"<{name}/> cannot be self-closing")
        if closing:
            if attr_text.strip():
                raise MarkupError(source, i, f"</{name}> cannot have attributes")
            if not stack:
                raise MarkupError(source, i, f"</{name}> closes nothing")
            if stack[-1].name != name:
                raise MarkupError(
                    source, i, f"</{name}> found where </{stack[-1].name}> was expected"
                )
            stack.pop()
            tokens.append(Token("close", tag.group(), i, name=name))
        else:
            attrs: list[tuple[str, str]] = []
            pos = 0
            while pos < len(attr_text) and attr_text[pos:].strip():
                attribute = _ATTRIBUTE.match(attr_text, pos)
                if attribute is None or attribute.end() == pos:
                    raise MarkupError(source, i, f"cannot read the attributes of <{name}>")
                value = next((v for v in attribute.group(2, 3, 4) if v is not None), "")
                attrs.append((attribute.group(1).lower(), _decode_all(value)))
                pos = attribute.end()
            token = Token("open", tag.group(), i, name=name, attrs=tuple(attrs))
            _check_tag(source, token, stack)
            stack.append(token)
            tokens.append(token)
        i = tag.end()
    if stack:
        raise MarkupError(source, stack[-1].offset, f"<{stack[-1].name}> is never closed")
    return tokens


def validate_html(source: str) -> str:
    """``source`` if it is valid Telegram HTML, else :class:`MarkupError`."""
    tokenize_html(source)
    return source


# --- the outputs ----------------------------------------------------------------------------------


def telegram_html(body: str, fmt: Format) -> str:
    """The body as Telegram HTML (checked); plain text is escaped."""
    if fmt is Format.MARKDOWN:
        return validate_html(markdown_to_html(body))
    if fmt is Format.HTML:
        return validate_html(body)
    return escape_text(body)


def check_body(body: str, fmt: Format) -> None:
    """Raise :class:`MarkupError` when ``body`` is not valid in ``fmt``."""
    if fmt is not Format.TEXT:
        telegram_html(body, fmt)


def _plain(tokens: Iterable[Token]) -> str:
    """The visible text, each link followed by its URL: ``label (url)``."""
    out: list[str] = []
    links: list[tuple[str, int]] = []
    for token in tokens:
        if token.kind == "text":
            out.append(token.visible)
        elif token.kind == "placeholder":
            out.append(token.raw)
        elif token.kind == "open" and token.name == "a":
            links.append((token.attr("href") or "", len(out)))
        elif token.kind == "close" and token.name == "a" and links:
            href, start = links.pop()
            if "".join(out[start:]).strip() != href:
                out.append(f" ({href})")
    return "".join(out)


def _buttons_text(buttons: Buttons) -> str:
    return "\n".join(f"{b.label}: {b.url}" for row in buttons for b in row)


def plain_text(
    body: str, fmt: Format, buttons: Buttons = (), *, render: Render | None = None
) -> str:
    """The body without formatting (links as ``label (url)``), then one line per button: the
    email's text part and the SMS text. ``render`` (placeholders, no escaping) runs on the
    result."""
    text = body if fmt is Format.TEXT else _plain(tokenize_html(telegram_html(body, fmt)))
    if buttons:
        listed = _buttons_text(buttons)
        text = f"{text.rstrip()}\n\n{listed}" if text.strip() else listed
    return render(text) if render is not None else text


_EMAIL_TAGS = {
    "strong": "b", "em": "i", "ins": "u", "strike": "s", "del": "s", "tg-spoiler": "span",
}  # fmt: skip


def _email_body(tokens: Sequence[Token]) -> str:
    out: list[str] = []
    in_pre = 0
    for token in tokens:
        if token.kind == "text":
            out.append("<br>\n" if token.raw == "\n" and not in_pre else token.raw)
        elif token.kind == "placeholder":
            out.append(token.raw)
        else:
            name = _EMAIL_TAGS.get(token.name, token.name)
            if token.kind == "close":
                in_pre -= token.name == "pre"
                out.append(f"</{name}>")
                continue
            in_pre += token.name == "pre"
            if token.name == "a":
                href = html.escape(token.attr("href") or "", quote=True)
                out.append(f'<a href="{href}">')
            elif token.name == "code" and token.attr("class"):
                out.append(f'<code class="{html.escape(token.attr("class") or "")}">')
            else:
                out.append(f"<{name}>")
    return "".join(out)


def email_html(
    subject: str, body: str, fmt: Format, buttons: Buttons = (), *, render: Render | None = None
) -> str:
    """The email's HTML part: the body with its formatting, then the buttons as links.
    ``render`` (placeholders, autoescaping) runs on the whole document."""
    tokens = tokenize_html(telegram_html(body, fmt))
    links = "".join(
        "<p>"
        + " &middot; ".join(
            f'<a href="{html.escape(b.url, quote=True)}">{html.escape(b.label)}</a>' for b in row
        )
        + "</p>\n"
        for row in buttons
    )
    page = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape_text(subject)}</title>\n</head>\n"
        f"<body>\n<p>{_email_body(tokens)}</p>\n{links}</body>\n</html>\n"
    )
    return render(page) if render is not None else page


# --- splitting Telegram HTML ----------------------------------------------------------------------

_SEPARATORS: tuple[tuple[str, float], ...] = (("\n\n", 0.5), ("\n", 0.5), (" ", 0.0))


def _open_tags(tokens: Sequence[Token], stack: list[Token]) -> list[Token]:
    for token in tokens:
        if token.kind == "open":
            stack.append(token)
        elif token.kind == "close":
            stack.pop()
    return stack


def _cut(
    tokens: Sequence[Token], start: int, end: int, limit: int, max_entities: int
) -> tuple[int, int]:
    """Where the part starting at ``start`` (whose tokens up to ``end`` fit) ends, and where
    the next begins (after the dropped separator). A line or paragraph break counts only when
    the part is at least half full, of characters or of entities."""
    units, opens = 0, 0
    best: dict[str, tuple[int, int]] = {}
    for index in range(start, min(end + 1, len(tokens))):
        token = tokens[index]
        if token.kind == "text" and token.raw in ("\n", " "):
            half = units >= limit * 0.5 or opens >= max_entities * 0.5
            paragraph = index > start and tokens[index - 1].raw == "\n"
            if token.raw == "\n" and paragraph and half:
                best["\n\n"] = (index - 1, index + 1)
            if token.raw == "\n" and half:
                best["\n"] = (index, index + 1)
            if token.raw == " " and index > start:
                best[" "] = (index, index + 1)
        units += token.units
        opens += token.kind == "open"
    for separator, _ in _SEPARATORS:
        if separator in best:
            return best[separator]
    return end, end


def split_html(
    source: str, limit: int = TELEGRAM_TEXT_LIMIT, max_entities: int = MAX_ENTITIES
) -> list[str]:
    """Split checked Telegram HTML into messages of at most ``limit`` visible UTF-16 units and
    ``max_entities`` tags each, only between characters: tags open at a split are closed at the
    end of the part and opened again at the start of the next."""
    tokens = tokenize_html(source)
    parts: list[str] = []
    start = 0
    carried: list[Token] = []
    while start < len(tokens):
        units, entities, end = 0, len(carried), start
        while end < len(tokens):
            token = tokens[end]
            if units + token.units > limit or (token.kind == "open" and entities >= max_entities):
                break
            units += token.units
            entities += token.kind == "open"
            end += 1
        if end == start:  # a single placeholder longer than the limit: it goes alone
            end += 1
        stop, resume = (
            (end, end) if end == len(tokens) else _cut(tokens, start, end, limit, max_entities)
        )
        if stop == start:
            stop = resume = end
        still_open = _open_tags(tokens[start:stop], list(carried))
        text = (
            "".join(t.raw for t in carried)
            + "".join(t.raw for t in tokens[start:stop])
            + "".join(f"</{t.name}>" for t in reversed(still_open))
        )
        if any(t.kind in ("text", "placeholder") and t.raw.strip() for t in tokens[start:stop]):
            parts.append(text)
        carried = _open_tags(tokens[stop:resume], still_open)
        start = resume
    return parts or [""]


def telegram_messages(
    subject: str,
    body: str,
    fmt: Format,
    limit: int = TELEGRAM_TEXT_LIMIT,
    *,
    render: Render | None = None,
) -> list[str]:
    """A rich body as Telegram HTML messages: the subject as a bold first line, then the body,
    split within ``limit``. ``render`` (placeholders, autoescaping) runs on the whole HTML
    before it is split, so the limits count the rendered text; its output must stay valid
    Telegram HTML (autoescaped values are)."""
    converted = telegram_html(body, fmt)
    subject = subject.strip()
    if subject:
        heading = f"<b>{escape_text(subject)}</b>"
        converted = f"{heading}\n\n{converted}" if converted.strip() else heading
    if render is not None:
        converted = render(converted)
    return split_html(converted, limit)
