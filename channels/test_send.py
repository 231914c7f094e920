""" "Send me a test": the pieces of a test send that are not the composer's plumbing.

A test goes only to the caller's own addresses (``persistence.user_addresses``), through the
outbox like any broadcast, marked ``is_test`` (never billed, never listed as a broadcast), its
subject starting with ``[TEST]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.composition import TEST_PREFIX, CompositionError
from channels.personalise import (
    MissingDataError,
    TemplateError,
    compile_template,
    is_personalised,
)

# What each channel says when the caller has no address of theirs for it.
NO_ADDRESS = {
    "email": "you have no email address (herald users set-email USER EMAIL)",
    "telegram": "your Telegram is not linked (send the bot /link CODE; the console shows a code)",
    "sms": "a test is not sent by SMS (users have no mobile number)",
    "storage": "a test is not stored in anyone's inbox",
}


def render_for_recipient(
    subject: str, body: str, context: Mapping[str, Any], channel: str, fmt: str = "text"
) -> tuple[str, str]:
    """The subject and body with ``context``'s values in their placeholders (the recipient the
    test is rendered for; none: an empty context), as the channel then formats them: values are
    HTML-escaped in an HTML body. A value the recipient lacks is a 422 naming the field.

    The values go into the stored source, which the channel then converts as it always does
    (Markdown and plain text are escaped by that conversion), so a Markdown character in a
    value formats a test send where a real broadcast would show it literally.
    """
    del channel
    if not is_personalised(subject, body):
        return subject, body
    rendered = []
    for field, text, escape in (("subject", subject, False), ("body", body, fmt == "html")):
        try:
            rendered.append(compile_template(text, field=field, escape_html=escape).render(context))
        except TemplateError as exc:
            raise CompositionError(exc.field, exc.reason) from None
        except MissingDataError as exc:
            raise CompositionError(field, f"the recipient has {exc.reason}") from None
    return rendered[0], rendered[1]


def test_subject(subject: str) -> str:
    return f"{TEST_PREFIX}{subject}".strip()
