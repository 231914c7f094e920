"""Personalisation: placeholders in a broadcast's subject and bodies, rendered per recipient.

A subject or body may use Jinja2 placeholders naming the recipient's own data::

    Dear {{ name }}, contract {{ extra.contract_number }} renews on {{ extra.renewal }}.

They are rendered in Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` with
``StrictUndefined``, no globals, no calls, no includes and a short list of filters, over a context
holding nothing but the recipient's fields (:data:`PLACEHOLDERS`) and its ``extra`` JSON. A name
outside that list, an attribute starting with ``_`` (``{{ ''.__class__ }}``), a call or an unknown
filter is refused when the broadcast is composed (:class:`TemplateError`, a 422 naming the field);
the sandbox still guards whatever gets through at render time.

Output is escaped for where it lands: the rich bodies are converted first (placeholders are opaque
to :mod:`channels.rich_text`) and the values are then HTML-escaped into Telegram HTML and the email
HTML part; the SMS text, the email text part, the subject header and a plain-text Telegram body
(escaped whole afterwards, as always) get the values as they are.

A broadcast without ``{{`` or ``{%`` anywhere is not personalised at all: its deliveries carry no
parameters and every channel behaves byte for byte as before. A personalised broadcast stores, on
each delivery row, the values of the placeholders it uses (``params``: only those, nested as in
the recipient: ``{"name": "Anna", "extra": {"contract_number": "C-1"}}``), so the dispatcher
renders at send time without reloading the recipient.

For other parts of Herald (a "send me a test", a preview) the one public entry point is
:func:`render_for_recipient`::

    rendered = render_for_recipient(
        "Hello {{ name }}", "Your code: {{ extra.code }}", {"name": "Anna", "extra": {"code": 7}},
        "telegram",
    )
    rendered.texts  # ['<b>Hello Anna</b>\\n\\nYour code: 7']

It raises :class:`TemplateError` (bad placeholder syntax) or :class:`MissingDataError` (the
context lacks a value the content uses, with a reason such as ``missing extra.code``).
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from channels import rich_text
from channels.sms_text import SmsAnalysis, analyse_sms
from channels.telegram_text import render_messages

# The placeholders a template may name, and the recipient column each one reads.
PLACEHOLDERS: dict[str, str] = {
    "name": "name",
    "email": "email",
    "phone": "sms",
    "sms": "sms",
    "vat_number": "vat_number",
    "fiscal_code": "fiscal_code",
    "external_id": "external_id",
    "extra": "extra",
}
# Filters a placeholder may use; none of them can grow a text without bound.
ALLOWED_FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "first", "float", "int", "join", "last",
        "length", "lower", "replace", "round", "string", "title", "trim", "truncate", "upper",
    }
)  # fmt: skip
_FORBIDDEN_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Call,
    nodes.Include,
    nodes.Extends,
    nodes.Import,
    nodes.FromImport,
    nodes.Macro,
    nodes.CallBlock,
)
_OPTIONAL_TESTS = frozenset({"defined", "undefined", "none"})
_MARKERS = ("{{", "{%")
# Compiled templates kept per renderer (a broadcast has at most a handful of sources per channel).
CACHE_SIZE = 64

Path = tuple[str | int, ...]
# The fast extractor notes in each context the total length of its values (not a placeholder
# name, so no template can read it): enough to know a short text fits one Telegram message.
SIZE_KEY = " size"


class TemplateError(ValueError):
    """A subject or body whose placeholders cannot be used; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class MissingDataError(ValueError):
    """The recipient lacks a value the content uses (``reason``: ``missing extra.x``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_personalised(*texts: str | None) -> bool:
    """Whether any of ``texts`` has a placeholder or a template tag."""
    return any(text and any(marker in text for marker in _MARKERS) for text in texts)


def path_name(path: Path) -> str:
    """``("extra", "contract_number")`` as written in a template: ``extra.contract_number``."""
    out = str(path[0])
    for part in path[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _Sandbox(SandboxedEnvironment):
    """The sandbox, also refusing ``*`` and ``**`` on texts and lists (a placeholder must not
    build a gigabyte)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" or (operator == "*" and not (_is_number(left) and _is_number(right))):
            raise SecurityError(f"the {operator} operator is only allowed between numbers")
        return super().call_binop(context, operator, left, right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _html_finalize(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _environment(escape_html: bool) -> SandboxedEnvironment:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_html_finalize if escape_html else None,
        keep_trailing_newline=True,
    )
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in ALLOWED_FILTERS}
    return env


def _path_of(node: nodes.Node) -> Path | None:
    """The recipient path a chain of attribute and constant item lookups reads, if any."""
    if isinstance(node, nodes.Name):
        return (node.name,) if node.name in PLACEHOLDERS and node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        inner = _path_of(node.node)
        return None if inner is None else (*inner, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        key = node.arg.value
        if isinstance(key, str | int) and not isinstance(key, bool):
            inner = _path_of(node.node)
            return None if inner is None else (*inner, key)
    return None


def _collect(node: nodes.Node, optional: bool, required: set[Path], maybe: set[Path]) -> None:
    path = _path_of(node)
    if path is not None:
        (maybe if optional else required).add(path)
        return
    if isinstance(node, nodes.Test) and node.name in _OPTIONAL_TESTS:
        _collect(node.node, True, required, maybe)
        for arg in node.args:
            _collect(arg, optional, required, maybe)
        return
    if isinstance(node, nodes.Filter) and node.name in ("default", "d") and node.node is not None:
        _collect(node.node, True, required, maybe)
        for arg in node.args:
            _collect(arg, optional, required, maybe)
        return
    for child in node.iter_child_nodes():
        _collect(child, optional, required, maybe)


def _simple_pieces(ast: nodes.Template) -> list[str | Path] | None:
    """A template made only of text and bare placeholders, as pieces (text or path), so it can
    be rendered by joining; None for anything else (tags, filters, expressions)."""
    pieces: list[str | Path] = []
    for statement in ast.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append(node.data)
                continue
            path = _path_of(node)
            if path is None:
                return None
            pieces.append(path)
    return pieces


@dataclass
class Template:
    """One compiled subject or body: what it reads and how it renders."""

    source: str
    required: tuple[Path, ...]
    optional: tuple[Path, ...]
    escape_html: bool
    _jinja: JinjaTemplate
    _pieces: list[str | Path] | None = field(default=None, repr=False)

    @property
    def paths(self) -> tuple[Path, ...]:
        return self.required + self.optional

    def length_bound(self) -> tuple[int, int] | None:
        """For a template of text and bare placeholders: its static length and the most times
        one placeholder occurs (rendered length <= static + values x that); else None."""
        if self._pieces is None:
            return None
        static = sum(len(p) for p in self._pieces if isinstance(p, str))
        counts: dict[Path, int] = {}
        for piece in self._pieces:
            if not isinstance(piece, str):
                counts[piece] = counts.get(piece, 0) + 1
        return static, max(counts.values(), default=0)

    def render(self, context: Mapping[str, Any]) -> str:
        """The text for one recipient; raises :class:`MissingDataError` when a value is missing
        or cannot be rendered (a SecurityError of the sandbox included)."""
        if self._pieces is not None:
            out: list[str] = []
            escape = self.escape_html
            for piece in self._pieces:
                if isinstance(piece, str):
                    out.append(piece)
                    continue
                value = context.get(str(piece[0]))
                if len(piece) > 1:
                    if len(piece) == 2 and type(value) is dict:
                        value = value.get(piece[1])
                    else:
                        value = lookup(context, piece)
                if value is None:
                    raise MissingDataError(f"missing {path_name(piece)}")
                text = value if isinstance(value, str) else str(value)
                out.append(html.escape(text, quote=True) if escape else text)
            return "".join(out)
        try:
            return self._jinja.render(context)
        except UndefinedError as exc:
            missing = next((p for p in self.required if lookup(context, p) is None), None)
            if missing is not None:
                raise MissingDataError(f"missing {path_name(missing)}") from None
            raise MissingDataError(f"cannot be rendered: {exc.message}") from None
        except SecurityError as exc:
            raise MissingDataError(f"refused by the sandbox: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise MissingDataError(f"cannot be rendered: {exc}") from None


_MISSING = object()


def lookup(context: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path`` in ``context`` (dicts and lists only), or None."""
    value: Any = context
    for part in path:
        if type(value) is dict or (isinstance(value, Mapping) and isinstance(part, str)):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(value):
            value = value[part]
        else:
            return None
        if value is _MISSING:
            return None
    return value


def compile_template(source: str, *, field: str, escape_html: bool = False) -> Template:
    """Compile ``source`` (the subject or a body) once for a whole broadcast."""
    env = _environment(escape_html)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            field, f"placeholder syntax error on line {exc.lineno}: {exc.message}"
        ) from None
    _check(ast, field)
    required: set[Path] = set()
    maybe: set[Path] = set()
    _collect(ast, False, required, maybe)
    maybe -= required
    try:
        compiled = env.from_string(ast)
    except TemplateSyntaxError as exc:  # pragma: no cover - parse caught it above
        raise TemplateError(field, f"placeholder syntax error: {exc.message}") from None
    return Template(
        source,
        tuple(sorted(required, key=path_name)),
        tuple(sorted(maybe, key=path_name)),
        escape_html,
        compiled,
        _simple_pieces(ast),
    )


def _check(ast: nodes.Template, field: str) -> None:
    """Refuse what the placeholders may not do, naming it."""
    for node in ast.find_all(_FORBIDDEN_NODES):
        what = type(node).__name__.lower()
        if isinstance(node, nodes.Call):
            raise TemplateError(field, "placeholders cannot call functions or methods; use filters")
        raise TemplateError(field, f"{{% {what} %}} is not allowed in a placeholder template")
    for filtered in ast.find_all((nodes.Filter, nodes.Test)):
        name = filtered.name
        if isinstance(filtered, nodes.Filter) and name not in ALLOWED_FILTERS:
            raise TemplateError(
                field,
                f"unknown filter {name!r}; use one of {', '.join(sorted(ALLOWED_FILTERS))}",
            )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value if isinstance(node.arg.value, str) else None
        if attr is not None and attr.startswith("_"):
            raise TemplateError(
                field, f"{attr!r} is not allowed: placeholders read only the recipient's data"
            )
        if _path_of(node) is None and _root_name(node) is None:
            raise TemplateError(
                field, "placeholders read only the recipient's data (name, extra.…)"
            )
    declared = _declared_names(ast)
    for used in ast.find_all(nodes.Name):
        if used.ctx == "load" and used.name not in PLACEHOLDERS and used.name not in declared:
            raise TemplateError(
                field,
                f"unknown placeholder {used.name!r}; use one of {', '.join(PLACEHOLDERS)}",
            )


def _root_name(node: nodes.Node) -> str | None:
    """The variable a lookup chain starts from (a loop variable, say), if it starts from one."""
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        node = node.node
    return node.name if isinstance(node, nodes.Name) else None


def _declared_names(ast: nodes.Template) -> set[str]:
    """Names the template itself binds (loop variables, ``set``, ``loop``)."""
    names = {"loop"} if any(True for _ in ast.find_all(nodes.For)) else set()
    for target in ast.find_all(nodes.Name):
        if target.ctx in ("store", "param"):
            names.add(target.name)
    return names


# --- the recipient's context and the stored parameters ------------------------------------------


def nest(flat: Iterable[tuple[Path, Any]]) -> dict[str, Any]:
    """Values at paths as the nested context a template reads."""
    out: dict[str, Any] = {}
    for path, value in flat:
        target: Any = out
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(target, dict):
                target = target.setdefault(part, [] if isinstance(nxt, int) else {})
            else:  # pragma: no cover - a list inside a path: store the whole container
                break
        last = path[-1]
        if isinstance(target, dict):
            target[last] = value
        elif isinstance(target, list) and isinstance(last, int):
            while len(target) <= last:
                target.append(None)
            target[last] = value
    return out


@dataclass
class Personalisation:
    """A broadcast's compiled content (``None`` from :meth:`of` when it has no placeholders)."""

    subject: Template
    body: Template
    body_html: Template | None
    # Paths the content reads, and which must be there (the others sit under ``is defined`` or
    # ``| default``).
    required: tuple[Path, ...]
    optional: tuple[Path, ...]

    @classmethod
    def of(cls, subject: str, body: str, body_html: str | None) -> Personalisation | None:
        if not is_personalised(subject, body, body_html):
            return None
        compiled_subject = compile_template(subject, field="subject")
        compiled_body = compile_template(body, field="body")
        compiled_html = (
            compile_template(body_html, field="body_html", escape_html=True)
            if body_html is not None
            else None
        )
        parts = [t for t in (compiled_subject, compiled_body, compiled_html) if t is not None]
        required = sorted({p for t in parts for p in t.required}, key=path_name)
        optional = sorted({p for t in parts for p in t.optional} - set(required), key=path_name)
        return cls(compiled_subject, compiled_body, compiled_html, tuple(required), tuple(optional))

    @property
    def columns(self) -> list[str]:
        """The recipient columns the content reads."""
        return sorted({PLACEHOLDERS[str(p[0])] for p in (*self.required, *self.optional)})

    def extractor(
        self, index_of: Mapping[str, int]
    ) -> Callable[[Sequence[Any]], tuple[dict[str, Any] | None, str]]:
        """A function from a recipient row (its columns at ``index_of``) to the parameters to
        store, or ``(None, "missing extra.x")`` when a required value is missing."""
        plan = [
            (path, index_of[PLACEHOLDERS[str(path[0])]], path[1:], f"missing {path_name(path)}")
            for path in self.required
        ]
        if not self.optional and all(
            len(path) == 1 or (len(path) == 2 and isinstance(path[1], str))
            for path in self.required
        ):
            return _flat_extractor(
                [
                    (str(path[0]), index, str(rest[0]) if rest else None, reason)
                    for path, index, rest, reason in plan
                ]
            )
        optional = [
            (path, index_of[PLACEHOLDERS[str(path[0])]], path[1:]) for path in self.optional
        ]

        def extract(row: Sequence[Any]) -> tuple[dict[str, Any] | None, str]:
            values: list[tuple[Path, Any]] = []
            for path, index, rest, reason in plan:
                value = row[index]
                if rest:
                    value = lookup(value, rest) if isinstance(value, Mapping) else None
                if value is None:
                    return None, reason
                values.append((path, value))
            for path, index, rest in optional:
                value = row[index]
                if rest:
                    value = lookup(value, rest) if isinstance(value, Mapping) else None
                if value is not None:
                    values.append((path, value))
            return nest(values), ""

        return extract


def _flat_extractor(
    specs: Sequence[tuple[str, int, str | None, str]],
) -> Callable[[Sequence[Any]], tuple[dict[str, Any] | None, str]]:
    """The usual case made fast (a send renders 100,000 recipients): fields and ``extra.key``."""

    def extract(row: Sequence[Any]) -> tuple[dict[str, Any] | None, str]:
        context: dict[str, Any] = {}
        size = 0
        for top, index, key, reason in specs:
            value = row[index]
            if key is None:
                if value is None:
                    return None, reason
                context[top] = value
                size += len(value) if type(value) is str else len(str(value))
                continue
            value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                return None, reason
            inner = context.get(top)
            if inner is None:
                inner = context[top] = {}
            inner[key] = value
            size += len(value) if type(value) is str else len(str(value))
        context[SIZE_KEY] = size
        return context, ""

    return extract


def dump_params(params: Mapping[str, Any]) -> str:
    """The stored form of a delivery's parameters (a JSON object)."""
    if SIZE_KEY in params:
        params = {k: v for k, v in params.items() if k != SIZE_KEY}
    return json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str)


def context_of(recipient: Mapping[str, Any]) -> dict[str, Any]:
    """The rendering context of a recipient given by its columns (``sms`` also as ``phone``);
    anything that is not a recipient field is left out."""
    context = {
        name: recipient.get(column) for name, column in PLACEHOLDERS.items() if column in recipient
    }
    if "phone" in recipient and "sms" not in recipient:
        context["phone"] = context["sms"] = recipient["phone"]
    return {k: v for k, v in context.items() if v is not None}


# --- rendering per channel ---------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedContent:
    """What one recipient gets on one channel.

    ``subject`` (email, storage), ``text`` (the SMS text, the email text part, the stored body),
    ``html`` (the email HTML part) and ``texts`` (the Telegram messages, split as sent);
    ``sms`` is the SMS analysis of ``text`` on the SMS channel.
    """

    channel: str
    subject: str = ""
    text: str = ""
    html: str | None = None
    texts: tuple[str, ...] = ()
    parse_mode: str | None = None
    sms: SmsAnalysis | None = None


class Renderer:
    """Renders content per recipient for each channel, compiling each source once (a bounded
    cache: a channel renders the same broadcast for thousands of deliveries)."""

    def __init__(self, *, cache_size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[str, bool, str], Template] = OrderedDict()
        self._size = cache_size

    def template(self, source: str, *, field: str, escape_html: bool = False) -> Template:
        key = (source, escape_html, field)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        compiled = compile_template(source, field=field, escape_html=escape_html)
        self._cache[key] = compiled
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return compiled

    def raw(self, source: str, context: Mapping[str, Any], field: str) -> str:
        if not is_personalised(source):
            return source
        return self.template(source, field=field).render(context)

    def html(self, source: str, context: Mapping[str, Any], field: str) -> str:
        """``source`` (HTML) rendered with HTML-escaped values."""
        if not is_personalised(source):
            return source
        return self.template(source, field=field, escape_html=True).render(context)

    def _html(self, context: Mapping[str, Any], field: str) -> Callable[[str], str]:
        return lambda source: self.html(source, context, field)

    def subject(self, subject: str, context: Mapping[str, Any]) -> str:
        return self.raw(subject, context, "subject")

    def telegram(
        self,
        subject: str,
        body: str,
        fmt: rich_text.Format,
        context: Mapping[str, Any],
        parse_mode: str | None,
    ) -> tuple[list[str], str | None]:
        """The Telegram messages and their parse mode (plain text: rendered raw, then escaped
        and split as always; Markdown/HTML: converted, then rendered with escaped values)."""
        if fmt is rich_text.Format.TEXT:
            rendered_subject = self.raw(subject, context, "subject")
            rendered_body = self.raw(body, context, "body")
            return render_messages(rendered_subject, rendered_body, parse_mode), parse_mode
        texts = rich_text.telegram_messages(subject, body, fmt, render=self._html(context, "body"))
        return texts, "HTML"

    def email(
        self,
        subject: str,
        body: str,
        body_html: str | None,
        fmt: rich_text.Format,
        buttons: rich_text.Buttons,
        context: Mapping[str, Any],
        text_to_html: Callable[[str, str], str],
    ) -> tuple[str, str, str]:
        """The email's subject, text part and HTML part."""
        rendered_subject = self.raw(subject, context, "subject")
        if fmt is rich_text.Format.TEXT and not buttons:
            text = self.raw(body, context, "body")
            page = text_to_html(rendered_subject, text)
        else:
            text = rich_text.plain_text(
                body, fmt, buttons, render=lambda s: self.raw(s, context, "body")
            )
            page = rich_text.email_html(
                subject, body, fmt, buttons, render=self._html(context, "body")
            )
        if body_html is not None:
            page = self._html(context, "body_html")(body_html)
        return rendered_subject, text, page

    def sms(
        self,
        body: str,
        fmt: rich_text.Format,
        buttons: rich_text.Buttons,
        context: Mapping[str, Any],
    ) -> str:
        """The SMS text: the body without formatting, values as they are."""
        if fmt is rich_text.Format.TEXT and not buttons:
            return self.raw(body, context, "body")
        return rich_text.plain_text(
            body, fmt, buttons, render=lambda s: self.raw(s, context, "body")
        )


def render_for_recipient(
    subject: str,
    body: str,
    recipient_context: Mapping[str, Any],
    channel: str,
    *,
    fmt: str = "text",
    body_html: str | None = None,
    buttons: Sequence[Sequence[Mapping[str, Any]]] = (),
    parse_mode: str | None = "HTML",
    max_sms_fragments: int = 7,
) -> RenderedContent:
    """What ``channel`` would send one recipient for this content.

    ``recipient_context`` holds the recipient's fields by placeholder name (``name``,
    ``email``, ``phone``, ``extra``…; :func:`context_of` builds it from a recipient's columns).
    Raises :class:`TemplateError` for unusable placeholders, :class:`MissingDataError` when the
    recipient lacks a value, ``rich_text.MarkupError`` for invalid markup.
    """
    renderer = Renderer()
    form = rich_text.Format(fmt)
    checked = rich_text.check_buttons(buttons)
    Personalisation.of(subject, body, body_html)  # refuse bad templates whichever channel
    context = dict(recipient_context)
    if channel == "telegram":
        texts, mode = renderer.telegram(subject, body, form, context, parse_mode)
        return RenderedContent(channel, texts=tuple(texts), parse_mode=mode)
    if channel == "email":
        from channels.smtp_channel import text_to_html  # the email channel's own plain page

        rendered_subject, text, page = renderer.email(
            subject, body, body_html, form, checked, context, text_to_html
        )
        return RenderedContent(channel, subject=rendered_subject, text=text, html=page)
    if channel == "sms":
        text = renderer.sms(body, form, checked, context)
        return RenderedContent(
            channel, text=text, sms=analyse_sms(text, max_fragments=max_sms_fragments)
        )
    return RenderedContent(
        channel,
        subject=renderer.subject(subject, context),
        text=renderer.raw(body, context, "body"),
    )


def as_received(
    subject: str, body: str, params: Mapping[str, Any] | None, renderer: Renderer | None = None
) -> tuple[str, str]:
    """The subject and body one recipient got (the inbox's thread shows them): rendered with
    the delivery's stored values, or as written when it was not personalised (or no longer
    renders)."""
    if params is None:
        return subject, body
    r = renderer or Renderer()
    try:
        return r.subject(subject, params), r.raw(body, params, "body")
    except (TemplateError, MissingDataError):
        return subject, body
