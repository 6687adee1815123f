"""Every password and token the suite seeds is registered here; when the session
ends, a dump of every test database and every log line must contain none of them."""

from __future__ import annotations

import logging

SEEDED: set[str] = set()


def seeded(secret: str) -> str:
    SEEDED.add(secret)
    return secret


class LogRecorder(logging.Handler):
    """Keeps every log line the app writes during the suite, as a reader would see it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot be formatted still counts
            self.lines.append(f"{record.msg!r} {record.args!r} ({exc})")


DUMPS: list[tuple[str, str]] = []  # (what, text) of every database, taken before it is dropped


def record_dump(what: str, text: str) -> None:
    DUMPS.append((what, text))


def leaks(text: str) -> list[str]:
    return sorted(secret for secret in SEEDED if secret and secret in text)
