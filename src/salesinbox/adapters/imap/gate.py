"""At most N connections from this process to one mail account at once.

Providers cap simultaneous IMAP connections per account (Gmail refuses the
16th with "[ALERT] Too many simultaneous connections", Dovecot allows 10 per
user and address by default) and the person's phone and desktop count too.
Every ``ImapSession`` takes a place here before it opens its socket and gives
it back when it closes; a session that finds the account's places taken waits
(up to its timeout) instead of being refused by the server.

The cap of an account is what its host name suggests until a connection has
shown the server's profile (CAPABILITY); from then on the profile's cap
applies. Per process: scaled out, the sync process holding an account's
lease opens its connections, and web processes open a few short-lived ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable


class ConnectionGate:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: dict[Hashable, int] = {}
        self._caps: dict[Hashable, int] = {}

    def enter(self, account: Hashable, cap: int, timeout: float) -> bool:
        """Take a place for ``account``; False when none was free within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._open.get(account, 0) >= self._caps.get(account, cap):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._open[account] = self._open.get(account, 0) + 1
            return True

    def leave(self, account: Hashable) -> None:
        with self._changed:
            left = self._open.get(account, 0) - 1
            if left > 0:
                self._open[account] = left
            else:
                self._open.pop(account, None)
            self._changed.notify_all()

    def learn(self, account: Hashable, cap: int) -> None:
        """The server showed its profile: its cap applies to the account from now on."""
        with self._changed:
            self._caps[account] = cap
            self._changed.notify_all()

    def open_now(self, account: Hashable) -> int:
        with self._changed:
            return self._open.get(account, 0)


GATE = ConnectionGate()
