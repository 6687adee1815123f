"""Every password and token the suite seeds is registered here; when the session
ends, a dump of every test database and every log line must contain none of them."""

from __future__ import annotations

import logging
import re

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


def leaks(text: str, secrets: set[str] | None = None) -> list[str]:
    """The secrets (``SEEDED`` by default) found anywhere in ``text``.

    Searching each of thousands of secrets through a whole suite's database
    dumps took 50 s. A secret can only sit inside a run of characters that
    secrets are made of, at least as long as the shortest secret: those runs
    are cut out by one regular expression, each distinct run is looked at
    once, and only at places where a secret's first characters stand.
    """
    secrets = {s for s in (SEEDED if secrets is None else secrets) if s}
    if not secrets:
        return []
    shortest = min(len(s) for s in secrets)
    alphabet = "".join(sorted({ch for s in secrets for ch in s}))
    runs = set(re.findall(f"[{re.escape(alphabet)}]{{{shortest},}}", text))
    by_start: dict[str, list[str]] = {}
    for secret in secrets:
        by_start.setdefault(secret[:shortest], []).append(secret)
    found = set()
    for run in runs:
        for at in range(len(run) - shortest + 1):
            for secret in by_start.get(run[at : at + shortest], ()):
                if run.startswith(secret, at):
                    found.add(secret)
    return sorted(found)
