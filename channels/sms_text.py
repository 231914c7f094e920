"""SMS encoding analysis: GSM 03.38 (7-bit) or UCS-2, characters and fragments.

Used by the composer's presend (to show encoding, fragments and cost) and by the Skebby channel
(to pick the ``encoding`` parameter). Newlines are fine: GSM-7 has both ``\\n`` and ``\\r`` in
its basic table.

Counting rules (3GPP TS 23.038 / 23.040):
- GSM-7: basic-table characters cost one septet; extension-table characters cost two (an escape
  plus the character). One SMS holds 160 septets; a concatenated SMS spends 7 septets of each
  fragment on the user-data header, leaving 153. An escape and its character must travel in the
  same fragment, so an extension character that would straddle a boundary moves whole to the next.
- UCS-2: each UTF-16 code unit costs one (emoji and other astral characters cost two, as phones
  and gateways send them as surrogate pairs). 70 per single SMS, 67 per fragment otherwise; a
  surrogate pair is never split across fragments either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The GSM 03.38 basic table, in code-point order 0x00..0x7F, without 0x1B (the escape to the
# extension table, never a character on its own).
GSM_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table characters every handset supports; each costs two septets.
GSM_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM_SINGLE = 160
GSM_MULTI = 153
UCS2_SINGLE = 70
UCS2_MULTI = 67

Encoding = Literal["gsm", "ucs2"]


@dataclass(frozen=True)
class SmsAnalysis:
    encoding: Encoding
    characters: int  # septets (GSM) or UTF-16 code units (UCS-2)
    fragments: int
    per_fragment: int  # capacity of one fragment at this length: 160/153 or 70/67
    fits: bool  # non-empty and within max_fragments
    unsupported: tuple[str, ...]  # characters outside GSM-7 that forced UCS-2, first seen first


def gsm_unsupported(text: str) -> tuple[str, ...]:
    """The distinct characters of ``text`` that GSM-7 cannot carry, in order of appearance."""
    seen: dict[str, None] = {}
    for char in text:
        if char not in GSM_BASIC and char not in GSM_EXTENSION:
            seen.setdefault(char, None)
    return tuple(seen)


def _unit_costs(text: str, encoding: Encoding) -> list[int]:
    """What each character costs; a character is the indivisible unit for fragmenting."""
    if encoding == "gsm":
        return [2 if char in GSM_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _count_fragments(costs: list[int], single: int, multi: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # Greedy packing: a two-unit character that does not fit whole opens a new fragment.
    fragments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            fragments += 1
            used = 0
        used += cost
    return fragments


def analyse_sms(text: str, *, max_fragments: int) -> SmsAnalysis:
    """Pick the encoding for ``text`` and count its characters and fragments."""
    unsupported = gsm_unsupported(text)
    encoding: Encoding = "ucs2" if unsupported else "gsm"
    single, multi = (UCS2_SINGLE, UCS2_MULTI) if unsupported else (GSM_SINGLE, GSM_MULTI)
    costs = _unit_costs(text, encoding)
    characters = sum(costs)
    fragments = _count_fragments(costs, single, multi)
    return SmsAnalysis(
        encoding=encoding,
        characters=characters,
        fragments=fragments,
        per_fragment=single if characters <= single else multi,
        fits=0 < fragments <= max_fragments,
        unsupported=unsupported,
    )
