"""``reply_markup`` checks of the Telegram simulator, with the errors Telegram answers.

Inline keyboards: at most 100 buttons and 8 per row (``reply markup is too long``), every button
with a non-empty ``text`` (``BUTTON_TEXT_INVALID``) and exactly one action; a ``url`` must be
``http://``, ``https://`` or ``tg://`` (``BUTTON_URL_INVALID``); ``callback_data`` is 1-64 bytes
(``BUTTON_DATA_INVALID``). The markup is stored with the sent message as given.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.telegram_errors import JSON, bad_request

MAX_INLINE_BUTTONS = 100
MAX_INLINE_ROW = 8
_BUTTON_URL_RE = re.compile(r"(?:https?://[^\s/?#]+[^\s]*|tg://[^\s]+)", re.IGNORECASE)
_INLINE_ACTIONS = (
    "url", "callback_data", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "web_app",
    "copy_text", "callback_game", "pay",
)  # fmt: skip


def _rows(markup: JSON, name: str) -> list[list[Any]]:
    rows = markup[name]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{name}" must be an Array of Array')
    return rows


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request("can't parse inline keyboard button: InlineKeyboardButton expected")
    text = button.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [key for key in _INLINE_ACTIONS if button.get(key) not in (None, False)]
    if not actions:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    if len(actions) > 1:
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must have exactly one "
            "optional field"
        )
    url = button.get("url")
    if url is not None and (not isinstance(url, str) or not _BUTTON_URL_RE.fullmatch(url)):
        raise bad_request("BUTTON_URL_INVALID")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")


def check_reply_markup(markup: Any) -> JSON | None:
    """Validate the reply_markup object kinds Telegram accepts; return it as a dict."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = _rows(markup, "inline_keyboard")
        total = sum(len(row) for row in rows)
        if total > MAX_INLINE_BUTTONS or any(len(row) > MAX_INLINE_ROW for row in rows):
            raise bad_request("reply markup is too long")
        for row in rows:
            for button in row:
                _check_inline_button(button)
    elif "keyboard" in markup:
        _rows(markup, "keyboard")
    elif not (markup.get("remove_keyboard") or markup.get("force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return markup
