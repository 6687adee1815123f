"""Parsing many messages at once: the entry point worker processes import.

Kept apart from the sync service so that a spawned worker imports only the
MIME code, not the database and web stacks.
"""

from __future__ import annotations

from salesinbox.mime.parse import ParsedMessage, parse_message


def parse_many(raws: list[bytes]) -> list[ParsedMessage]:
    return [parse_message(raw) for raw in raws]


def die_with_parent() -> None:
    """Worker initializer: end this process when the one that started it dies (Linux), even by SIGKILL.

    Without it a killed sync process leaves its parse workers behind.
    """
    import ctypes
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)
