"""The console speaks English and Italian: every string has its Italian translation, the
language comes from the browser or the user's choice, and times are in the user's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir

from admin_api.console.i18n import build_i18n, load_catalogs, negotiate

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "tr": (2,)}


def _source_strings() -> set[str]:
    found: set[str] = set()
    method_map = [
        ("admin_api/console/**.py", "python"),
        ("admin_api/console/templates/**.html", "jinja2"),
    ]
    options = {"admin_api/console/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_console_string_has_an_italian_translation() -> None:
    """No English sentence is left behind on an Italian page (run `make translations`)."""
    italian = load_catalogs()["it"]
    strings = _source_strings()
    assert len(strings) > 200
    missing = sorted(s for s in strings if italian.gettext(s) == s and any(c.isalpha() for c in s))
    allowed = {"Email", "SMS", "Telegram", "Password", "no", "%(num)s unread"}
    assert [s for s in missing if s not in allowed] == []


def test_the_browser_language_is_the_default() -> None:
    """Accept-Language picks Italian or English; anything else falls back to English."""
    assert negotiate("it-IT,it;q=0.9,en;q=0.8") == "it"
    assert negotiate("de-DE,en;q=0.5") == "en"
    assert negotiate("fr") == "en"
    assert negotiate("") == "en"


def test_times_are_shown_in_the_users_zone_and_language() -> None:
    """The same moment reads differently in Rome (Italian) and in New York (English)."""
    catalogs = load_catalogs()
    moment = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)
    rome = build_i18n(
        catalogs,
        chosen_language="it",
        accept_language="",
        chosen_timezone="Europe/Rome",
        default_timezone="UTC",
    )
    york = build_i18n(
        catalogs,
        chosen_language=None,
        accept_language="en-US",
        chosen_timezone="America/New_York",
        default_timezone="UTC",
    )
    assert "19:30" in rome.when(moment) and "dic" in rome.when(moment)
    assert "1:30" in york.when(moment) and "Dec" in york.when(moment)
    assert rome.gettext("Dashboard") == "Cruscotto"
