"""Initial sync against mbsync, the same mailbox in one run (step 6: 50,000 messages, target ≤ 3×).

One deterministic mailbox (``bench.gen_mailbox``, BENCH_VERSUS_MESSAGES, 50,000
by default) in a throwaway Dovecot. mbsync (isync, C) downloads it into a
Maildir with ``FSync no``, three times (the median is the yardstick); then
``salesinbox sync ACCOUNT --once`` runs as a user runs it (the CLI, embedded
SQLite, a fresh data dir), and returns only when every header and text body
is stored and searchable. Both are timed by
wall clock from process start to exit; the ratio is ours / mbsync. Dovecot
reads the mailbox once before either is timed (its index and cache are
built on first access), so neither pays that. Results:
``bench/results/versus-mbsync.json``.

    python -m bench.versus_mbsync [MESSAGES]
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.gen_mailbox import chown_tree, generate
from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.services.sync_status import account_statuses
from salesinbox.settings import Settings
from tests.rig.dovecot import Dovecot

USER, PASSWORD = "bench@speed.test", "bench-pass"
RESULTS = Path(__file__).parent / "results"
MBSYNC_RUNS = 3
SALESINBOX = Path(sys.executable).with_name("salesinbox")

MBSYNCRC = """FSync no

IMAPAccount bench
Host {host}
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
"""


def _warm(dovecot: Dovecot) -> None:
    """Let Dovecot build its index and cache of the mailbox before anything is timed."""
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    try:
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        imap.uid("FETCH", "1:*", "(FLAGS INTERNALDATE RFC822.SIZE)")
    finally:
        imap.logout()


def _mbsync(dovecot: Dovecot, work: Path) -> float:
    local = work / "mbsync"
    local.mkdir()
    rc = work / "mbsyncrc"
    rc.write_text(MBSYNCRC.format(host=dovecot.host, port=dovecot.imap_port, user=USER, password=PASSWORD,
                                  local=local))
    start = time.perf_counter()
    subprocess.run(["mbsync", "-q", "-c", str(rc), "-a"], check=True, capture_output=True)
    took = time.perf_counter() - start
    shutil.rmtree(local)  # 1.7 GB for 50,000 messages: not kept
    return took


def _cli(settings: Settings, *args: str, log: Path | None = None) -> str:
    env = {**os.environ, "SALESINBOX_DATA_DIR": str(settings.data_dir),
           "SALESINBOX_SECRET_KEYS": settings.secret_keys.get_secret_value()}
    done = subprocess.run([str(SALESINBOX), *args], env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"salesinbox {args[0]} failed: {done.stderr[-2000:]}")
    return done.stdout


def _connect(settings: Settings, dovecot: Dovecot) -> str:
    """As a user would: ``salesinbox init`` and ``account add`` (it prints the new account's id last)."""
    _cli(settings, "init", "--company", "Speed Ltd", "--admin-email", "admin@speed.test",
         "--admin-password", "Adm1n-pass!", "--plan", "growth")
    out = _cli(settings, "account", "add", "--owner", "admin@speed.test", "--address", USER,
               "--imap", f"{dovecot.host}:{dovecot.imap_port}", "--smtp", f"{dovecot.host}:{dovecot.submission_port}",
               "--login", USER, "--password", PASSWORD, "--security", "none", "--sync-since", "all")
    return [line.strip() for line in out.splitlines() if line.strip()][-1]


async def _status(settings: Settings, account_id: str):
    runtime = bootstrap.build_runtime(settings)
    try:
        import uuid

        return (await account_statuses(runtime.deps, [uuid.UUID(account_id)]))[0]
    finally:
        await runtime.close()


def _ours(settings: Settings, account_id: str, work: Path) -> float:
    start = time.perf_counter()
    _cli(settings, "sync", account_id, "--once", log=work / "sync.log")
    return time.perf_counter() - start


def run(count: int) -> dict:
    if shutil.which("mbsync") is None:
        raise SystemExit("mbsync is missing: apt-get install isync")
    with tempfile.TemporaryDirectory() as tmp, Dovecot() as dovecot:
        work = Path(tmp)
        dovecot.add_user(USER, PASSWORD)
        maildir = dovecot.directory / "mail" / USER / "Maildir"
        size = generate(maildir, count)
        chown_tree(dovecot.directory / "mail" / USER)
        _warm(dovecot)
        # mbsync's time swings with the kernel's writeback of what it wrote (8-14 s for 50,000 messages
        # here, FSync off); the median of three runs is the yardstick.
        mbsync_runs = [_mbsync(dovecot, work) for _ in range(MBSYNC_RUNS)]
        mbsync_s = statistics.median(mbsync_runs)
        settings = Settings(data_dir=work / "data", secret_keys=generate_key())  # the embedded default: SQLite
        account_id = _connect(settings, dovecot)
        ours_s = _ours(settings, account_id, work)
        status = asyncio.run(_status(settings, account_id))
    return {
        "messages": count,
        "megabytes": round(size / 1e6),
        "mbsync_s": round(mbsync_s, 2),
        "mbsync_runs_s": [round(t, 2) for t in mbsync_runs],
        "salesinbox_s": round(ours_s, 2),
        "ratio": round(ours_s / mbsync_s, 2),
        "target_ratio": 3.0,
        "server_total": status.server_total,
        "synced": status.synced,
        "messages_stored": status.messages,
        "conversations": status.conversations,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


def main(argv: list[str]) -> dict:
    count = int(argv[0]) if argv else int(os.environ.get("BENCH_VERSUS_MESSAGES", "50000"))
    result = run(count)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "versus-mbsync.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
