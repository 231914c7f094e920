"""Address rules per channel: which recipients can be reached, which are duplicates, and why not.

The composer's presend shows these verdicts to the administrator and the send enqueues only the
valid targets, so every reason is a short sentence a person can act on. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from persistence.phones import normalize_phone

CHANNELS = ("email", "sms", "telegram", "storage")

# Separators people type inside phone numbers; anything else (letters, "ext") is refused.

# RFC 5322 dot-atom local part (ASCII): the pragmatic subset every mail server accepts.
_LOCAL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"^{_LOCAL_ATOM}(?:\.{_LOCAL_ATOM})*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _valid_domain(domain: str) -> bool:
    try:
        # Internationalised domains are valid in their punycode form.
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return False
    if labels[-1].isdigit():  # a top-level domain is never numeric ("user@1.2.3.4")
        return False
    return all(_DOMAIN_LABEL.match(label) for label in labels)


def is_valid_email(address: str) -> bool:
    """A pragmatic syntax check (no DNS): ``local@domain.tld`` as mail servers accept it."""
    if len(address) > 254 or address.count("@") != 1 or any(c.isspace() for c in address):
        return False
    local, domain = address.split("@")
    if not local or len(local) > 64 or not _LOCAL_PART.match(local):
        return False
    return _valid_domain(domain)


class Candidate(NamedTuple):
    """A recipient as the composer resolved it, with every address it may have.

    The composer loads only the fields the channels being sent to read (``CHANNEL_FIELDS``); the
    others keep their defaults.
    """

    kind: str
    id: int
    name: str = ""
    sms: str | None = None
    email: str | None = None
    telegram_chat_id: int | None = None
    telegram_opted_out: bool = False
    telegram_blocked: bool = False
    # Read only by a personalised broadcast's placeholders (channels.personalise).
    vat_number: str | None = None
    fiscal_code: str | None = None
    external_id: str | None = None
    extra: dict[str, Any] | None = None


class Target(NamedTuple):
    kind: str
    id: int
    address: str  # normalised: the email, the E.164 number, the chat id, or "kind:id" for storage


class Problem(NamedTuple):
    kind: str
    id: int
    address: str | None
    reason: str


@dataclass
class Classification:
    valid: list[Target] = field(default_factory=list)
    duplicates: list[Problem] = field(default_factory=list)
    invalid: list[Problem] = field(default_factory=list)


def _who(kind: str, ident: int) -> str:
    return f"{kind.replace('_', ' ')} {ident}"


# A rule turns a candidate into (address, dedup key) or a reason it cannot be reached.
_Verdict = tuple[str, str] | str
_Rule = Callable[[Candidate, str], _Verdict]


def _email_rule(candidate: Candidate, _region: str) -> _Verdict:
    address = (candidate.email or "").strip()
    if not address:
        return "no email address"
    if not is_valid_email(address):
        return f"invalid email address {address!r}"
    # Mailboxes are case-insensitive in practice: one message per mailbox, not per spelling.
    return address, address.lower()


def _sms_rule(candidate: Candidate, region: str) -> _Verdict:
    raw = (candidate.sms or "").strip()
    if not raw:
        return "no mobile number"
    number = normalize_phone(raw, region)
    if number is None:
        return f"not a valid phone number {raw!r}"
    return number, number


def _telegram_rule(candidate: Candidate, _region: str) -> _Verdict:
    if candidate.telegram_chat_id is None:
        return "not registered with the bot"
    if candidate.telegram_blocked:
        return "blocked the bot"
    if candidate.telegram_opted_out:
        return "opted out with /stop"
    chat = str(candidate.telegram_chat_id)
    return chat, chat


def _storage_rule(candidate: Candidate, _region: str) -> _Verdict:
    # The inbox is keyed by (kind, id): customer 1 and external subject 1 are different people.
    key = f"{candidate.kind}:{candidate.id}"
    return key, key


def _raw_address(channel: str, candidate: Candidate) -> str | None:
    """The address as stored, shown next to a problem so the administrator can fix it."""
    if channel == "email":
        return candidate.email or None
    if channel == "sms":
        return candidate.sms or None
    if channel == "telegram" and candidate.telegram_chat_id is not None:
        return str(candidate.telegram_chat_id)
    return None


# The Candidate fields each channel's rule reads besides kind and id: what a send has to load.
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("sms",),
    "telegram": ("telegram_chat_id", "telegram_opted_out", "telegram_blocked"),
    "storage": (),
}

_RULES: dict[str, tuple[_Rule, str]] = {
    "email": (_email_rule, "email address"),
    "sms": (_sms_rule, "mobile number"),
    "telegram": (_telegram_rule, "Telegram chat"),
    "storage": (_storage_rule, "inbox"),
}


class Classifier:
    """``classify`` fed piece by piece, so a send can write the first targets while later
    candidates are still being classified; ``result`` holds everything seen so far."""

    def __init__(
        self,
        channel: str,
        *,
        default_region: str,
        refused: Mapping[tuple[str, int], str] | None = None,
    ) -> None:
        try:
            self._rule, self._noun = _RULES[channel]
        except KeyError:
            known = ", ".join(CHANNELS)
            raise ValueError(f"unknown channel {channel!r} (known: {known})") from None
        self.channel = channel
        self._region = default_region
        # Recipients who refuse this channel (for this message's typology), with the reason.
        self._refused: Mapping[tuple[str, int], str] = refused or {}
        self.result = Classification()
        self._seen_recipients: set[tuple[str, int]] = set()
        self._owner_of: dict[str, tuple[str, int]] = {}

    def feed(self, candidates: Iterable[Candidate]) -> None:
        """Classify ``candidates`` as coming after every candidate fed before."""
        channel, rule, region = self.channel, self._rule, self._region
        seen_recipients, owner_of, refused = self._seen_recipients, self._owner_of, self._refused
        valid, duplicates, invalid = self.result.valid, self.result.duplicates, self.result.invalid
        for candidate in candidates:
            kind, ident = ref = candidate[:2]
            verdict = rule(candidate, region)
            if ref in seen_recipients:
                shown = _raw_address(channel, candidate) if isinstance(verdict, str) else verdict[0]
                duplicates.append(Problem(kind, ident, shown, "listed more than once"))
                continue
            seen_recipients.add(ref)
            if isinstance(verdict, str):
                invalid.append(Problem(kind, ident, _raw_address(channel, candidate), verdict))
                continue
            if refused and ref in refused:
                # Reachable, but the person said no: their address is shown, never used.
                invalid.append(Problem(kind, ident, verdict[0], refused[ref]))
                continue
            address, key = verdict
            owner = owner_of.get(key)
            if owner is not None:
                reason = f"same {self._noun} as {_who(*owner)}"
                duplicates.append(Problem(kind, ident, address, reason))
                continue
            owner_of[key] = ref
            valid.append(Target(kind, ident, address))


def classify(
    channel: str,
    candidates: Iterable[Candidate],
    *,
    default_region: str,
    refused: Mapping[tuple[str, int], str] | None = None,
) -> Classification:
    """Sort ``candidates`` into valid targets, duplicates and invalid ones for ``channel``.

    The first candidate with a given address wins; later ones are duplicates naming it. The same
    recipient listed twice is a duplicate even when it has no usable address. A reachable
    recipient in ``refused`` (their channel preferences) is invalid with the reason given.
    """
    classifier = Classifier(channel, default_region=default_region, refused=refused)
    classifier.feed(candidates)
    return classifier.result
