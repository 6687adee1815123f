"""Translations: gettext catalogs compiled by Babel, chosen per request.

The locale of the request lives in a context variable, so the Jinja gettext
callables and Python code (``_``) translate into the same language. Messages
of the services and the domain arrive as ``Text`` (English, with the msgid and
its parameters); ``localize`` turns them into the request's language where
they are shown: templates print every value through it (Jinja's ``finalize``),
and the routes call it where a message leaves as a flash or JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.text import Text

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


def localize(value: Any) -> Any:
    """A ``Text`` in the request's language; anything else (a plain str, None, a number) as it is."""
    return value.translate(gettext) if isinstance(value, Text) else value


def localize_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """A ``ValidationFailed``'s field messages in the request's language."""
    return {field: localize(message) for field, message in errors.items()}


def error_message(exc: BaseException) -> str:
    """What ``str(exc)`` says, in the request's language."""
    if isinstance(exc, ValidationFailed):
        return ValidationFailed.describe(localize_errors(exc.errors))
    if len(exc.args) == 1 and isinstance(exc.args[0], Text):
        return localize(exc.args[0])
    return str(exc)


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
