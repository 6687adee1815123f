"""Words for people that the domain and the services write, translated where they are shown.

The domain stays free of Babel (import-linter), yet its messages reach people
who read Polish. A ``Text`` is the English message itself, a ``str``, so every
caller, log line, test and API client that reads or compares the English keeps
working; it also keeps its msgid and parameters, so the web can look the msgid
up in the request's catalog and fill in the same parameters. Values (addresses,
names, numbers) are parameters, never part of the msgid. ``make messages``
extracts the msgids from ``Text("...")`` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any


class Text(str):
    """``Text("Use 1 to %(max)s MB.", max=150)`` is the str "Use 1 to 150 MB."."""

    __slots__ = ("msgid", "params")
    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, /, **params: Any) -> Text:
        # Without parameters the msgid is the text, as gettext has it: a lone "%" needs no doubling.
        text = super().__new__(cls, msgid % params if params else msgid)
        text.msgid, text.params = msgid, params
        return text

    def translate(self, gettext: Callable[[str], str]) -> str:
        """The text in ``gettext``'s language; a parameter that is a ``Text`` itself is translated too."""
        translated = gettext(self.msgid)
        if not self.params:
            return translated
        return translated % {k: v.translate(gettext) if isinstance(v, Text) else v for k, v in self.params.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        # A str subclass would otherwise pickle as its English value, losing what a translation needs.
        return partial(Text, self.msgid, **self.params), ()
