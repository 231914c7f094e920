"""Saved templates as content: what a template version holds, how it is checked, and how a
send request built from it is filled in (explicit fields of the request win).

A version's ``content`` is JSON: the shared text (``subject``, ``body``, ``body_html``,
``format``, ``buttons``) and ``per_channel``: for a channel, the fields it replaces
(``{"sms": {"body": "short text"}}``). No SQL here; ``persistence.template_queries`` stores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels import rich_text
from channels.composer import has_text
from channels.composition import CHANNELS, CONTENT_FIELDS, ComposeRequest, CompositionError

PER_CHANNEL = "per_channel"


def normalised(content: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form: the shared fields always present, per-channel fields only when set."""
    result: dict[str, Any] = {
        "subject": content.get("subject") or "",
        "body": content.get("body") or "",
        "body_html": content.get("body_html"),
        "format": content.get("format") or "text",
        "buttons": list(content.get("buttons") or []),
    }
    per_channel: dict[str, dict[str, Any]] = {}
    for channel, own in (content.get(PER_CHANNEL) or {}).items():
        values = {k: v for k, v in own.items() if k in CONTENT_FIELDS and v is not None}
        if values:
            per_channel[channel] = values
    result[PER_CHANNEL] = per_channel
    return result


def check_content(content: Mapping[str, Any]) -> None:
    """The markup and buttons of the shared text and of every channel's own (422 naming it)."""
    _check_one(content, "")
    for channel, own in (content.get(PER_CHANNEL) or {}).items():
        if channel not in CHANNELS:
            raise CompositionError(f"{PER_CHANNEL}.{channel}", f"unknown channel {channel!r}")
        merged = {**content, **own}
        _check_one(merged, f"{PER_CHANNEL}.{channel}.")


def _check_one(content: Mapping[str, Any], prefix: str) -> None:
    fmt = content.get("format") or "text"
    if fmt not in rich_text.FORMATS:
        raise CompositionError(f"{prefix}format", f"unknown format {fmt!r}")
    try:
        rich_text.check_body(content.get("body") or "", rich_text.Format(fmt))
    except rich_text.MarkupError as exc:
        raise CompositionError(f"{prefix}body", f"invalid {fmt}: {exc}", exc.details) from None
    try:
        rich_text.check_buttons(content.get("buttons") or [])
    except rich_text.ButtonError as exc:
        raise CompositionError(f"{prefix}{exc.field}", exc.reason) from None


def apply_template(
    request: ComposeRequest,
    content: Mapping[str, Any],
    *,
    template_id: int,
    version: int,
    typology_id: int | None,
    explicit: set[str],
) -> ComposeRequest:
    """``request`` filled in from a template version: its shared text and each channel's own,
    except the ``explicit`` fields the caller wrote (those replace the template's on every
    channel: choose a template, edit, send)."""
    stored = normalised(content)
    # A blank subject or body, or no HTML part, leaves the template's: a form sends every field.
    explicit = {
        name
        for name in explicit
        if not (name in ("subject", "body") and not has_text(str(getattr(request, name))))
        and not (name == "body_html" and request.body_html is None)
    }
    for name in CONTENT_FIELDS:
        if name not in explicit:
            setattr(request, name, stored[name])
    request.channel_content = {
        channel: {k: v for k, v in own.items() if k not in explicit}
        for channel, own in stored[PER_CHANNEL].items()
        if channel in request.channels
    }
    if "typology_id" not in explicit and request.typology_id is None:
        request.typology_id = typology_id
    request.template_id = template_id
    request.template_version = version
    return request
