""" "Send me a test": the pieces of a test send that are not the composer's plumbing.

A test goes only to the caller's own addresses (``persistence.user_addresses``), through the
outbox like any broadcast, marked ``is_test`` (never billed, never listed as a broadcast), its
subject starting with ``[TEST]``.
"""

from __future__ import annotations

from channels.composition import TEST_PREFIX
from persistence.recipient_kinds import RecipientRef

# What each channel says when the caller has no address of theirs for it.
NO_ADDRESS = {
    "email": "you have no email address (herald users set-email USER EMAIL)",
    "telegram": "your Telegram is not linked (send the bot /link CODE; the console shows a code)",
    "sms": "a test is not sent by SMS (users have no mobile number)",
    "storage": "a test is not stored in anyone's inbox",
}


def render_for_recipient(
    subject: str, body: str, recipient: RecipientRef | None, channel: str
) -> tuple[str, str]:
    """The subject and body as ``recipient`` would receive them on ``channel``.

    TODO(lead): wire channels.personalise.render_for_recipient (branch ``personalise``) here at
    merge, with the recipient's loaded context; until then the text is returned unchanged.
    """
    del recipient, channel
    return subject, body


def test_subject(subject: str) -> str:
    return f"{TEST_PREFIX}{subject}".strip()
