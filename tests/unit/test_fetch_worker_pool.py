"""The sync's worker processes outlive the thread that first used them, and end with their parent."""

from __future__ import annotations

import threading
import time

from salesinbox.adapters.imap import fetch_workers


def test_a_pool_first_used_from_a_thread_that_ended_keeps_its_workers():
    # An embedded app's first sync runs in its server thread, which ends when the app stops;
    # Linux's parent-death signal fired on that thread's end and took the workers with it.
    started = threading.Thread(target=lambda: fetch_workers._workers(2).submit(int).result())
    started.start()
    started.join()
    time.sleep(1.0)  # what a parent-death signal would have done, it has done by now
    pool = fetch_workers._workers(2)
    assert pool.submit(pow, 2, 5).result(timeout=60) == 32
    assert not pool._broken
