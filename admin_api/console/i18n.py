"""English and Italian: gettext catalogs (Babel ``.po`` files) and dates in the user's time zone.

The catalogs are the ``.po`` files under ``translations/``, compiled in memory at start-up, so
there is no build step and no binary ``.mo`` file to keep in step. ``make translations``
extracts the strings from the templates and views and updates the catalogs (pybabel).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.core import negotiate_locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from persistence.timezones import is_timezone

LANGUAGES = ("en", "it")
LANGUAGE_NAMES = {"en": "English", "it": "Italiano"}
DEFAULT_LANGUAGE = "en"
TRANSLATIONS_DIR = Path(__file__).with_name("translations")


def load_catalogs(directory: Path = TRANSLATIONS_DIR) -> dict[str, NullTranslations]:
    """One translations object per language; English is the source text itself."""
    catalogs: dict[str, NullTranslations] = {"en": NullTranslations()}
    for language in LANGUAGES[1:]:
        po_file = directory / language / "LC_MESSAGES" / "messages.po"
        with po_file.open("rb") as source:
            catalog = read_po(source, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogs[language] = Translations(compiled)
    return catalogs


def negotiate(accept_language: str) -> str:
    """The best of our languages for an ``Accept-Language`` header."""
    preferred = []
    for item in accept_language.split(",")[:20]:
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            preferred.append((quality, tag.replace("-", "_")))
    ordered = [tag for _, tag in sorted(preferred, key=lambda p: -p[0])]
    return negotiate_locale(ordered, LANGUAGES, sep="_") or DEFAULT_LANGUAGE


@lru_cache(maxsize=8)
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LANGUAGE)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class I18n:
    """One request's language, time zone and translations."""

    language: str
    timezone: str
    translations: NullTranslations

    @property
    def locale(self) -> Locale:
        return _locale(self.language)

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def when(self, value: datetime | None, form: str = "medium") -> str:
        if value is None:
            return ""
        return format_datetime(value, form, tzinfo=_zone(self.timezone), locale=self.locale)

    def number(self, value: int | float | Decimal | str) -> str:
        return format_decimal(Decimal(str(value)), locale=self.locale)


def build_i18n(
    catalogs: dict[str, NullTranslations],
    *,
    chosen_language: str | None,
    accept_language: str,
    chosen_timezone: str | None,
    default_timezone: str,
) -> I18n:
    language = chosen_language if chosen_language in catalogs else negotiate(accept_language)
    timezone = chosen_timezone if chosen_timezone and is_timezone(chosen_timezone) else None
    return I18n(language, timezone or default_timezone, catalogs[language])
