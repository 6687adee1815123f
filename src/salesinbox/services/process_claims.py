"""Which process holds a claim: ``host:pid``, and whether that process is gone.

A sync pass (``sync_state``) and a message being sent (``outbox``) are claimed
by writing the claiming process's ``host:pid``. A holder on this host whose
pid no longer exists was killed (``kill -9``, OOM, a crash) and will never
finish: its claim can be taken over at once. A holder on another host, or a
pid that exists (even if reused), is presumed alive; only a stale timestamp
frees its claim.
"""

from __future__ import annotations

import os
import socket


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_gone(owner: str | None) -> bool:
    """A claim held by a process of this host that no longer exists (killed, crashed)."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
