"""Phone numbers in E.164: the one normalisation used to store, match and send.

Recipients are stored in E.164; the bot matches shared contacts against them exactly, the composer
validates SMS addresses and the admin API normalises input, all with this function.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

_PHONE_CHARS = re.compile(r"^\+?[\d\s\-./()]+$")
_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")


@lru_cache(maxsize=200_000)  # parsing is ~0.2 ms; broadcasts go to the same numbers again
def normalize_phone(raw: str, default_region: str) -> str | None:
    """``raw`` as an E.164 number (``+393471234567``), or ``None`` when it is not a valid number.

    Accepts spaces, dashes, dots and brackets, the international ``00`` prefix, and numbers
    without ``+`` as Telegram shares them (``393471234567``): an all-digit number of 11 or more
    digits is first tried as international, then as a national number of ``default_region``.
    """
    text = raw.strip()
    if not text or not _PHONE_CHARS.match(text):
        return None
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    attempts: list[tuple[str, str | None]] = []
    if compact.startswith("+"):
        attempts.append((compact, None))
    else:
        if len(compact) >= 11:
            attempts.append(("+" + compact, None))
        attempts.append((compact, default_region))
    for number, region in attempts:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None
