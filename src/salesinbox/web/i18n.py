"""Translations: gettext catalogs compiled by Babel, chosen per request.

The locale of the request lives in a context variable, so the Jinja gettext
callables and Python code (``_``) translate into the same language.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
SUPPORTED = ("en", "pl")
DEFAULT = "en"

current_locale: ContextVar[str] = ContextVar("current_locale", default=DEFAULT)


@cache
def translations(locale: str) -> NullTranslations:
    return Translations.load(str(LOCALE_DIR), [locale], domain="messages")


def gettext(message: str) -> str:
    return translations(current_locale.get()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_locale.get()).ungettext(singular, plural, n)


_ = gettext


def negotiate(accept_language: str | None, preferred: str | None = None) -> str:
    """The user's own choice first, then the browser's, then English."""
    if preferred in SUPPORTED:
        return preferred
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in SUPPORTED:
            return tag
    return DEFAULT


def mail_time(when, *, full: bool = False, now=None) -> str:
    """A message time as mail clients show it: the time today, the day this year, else the date (UTC for now)."""
    import datetime as dt

    from babel.dates import format_date, format_datetime, format_time

    locale = current_locale.get()
    now = now or dt.datetime.now(dt.UTC)
    if full:
        return format_datetime(when, "medium", locale=locale)
    if when.date() == now.date():
        return format_time(when, "short", locale=locale)
    if when.year == now.year:
        return format_date(when, "d MMM", locale=locale)
    return format_date(when, "short", locale=locale)


def file_size(size: int) -> str:
    from babel.numbers import format_decimal

    locale = current_locale.get()
    if size < 1024:
        return f"{size} B"
    for unit, scale in (("KB", 1024), ("MB", 1024**2), ("GB", 1024**3)):
        if size < scale * 1024 or unit == "GB":
            return f"{format_decimal(round(size / scale, 1), locale=locale)} {unit}"
    return f"{size} B"
