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
