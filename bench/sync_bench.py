"""Sync benchmark: a deterministic 10,000-message mailbox in a throwaway Dovecot,
synced with `sync_account_once` while a poller lists conversations through the
service the API uses.

Measures: time until the first 50 conversations are listed, until every
conversation is listed, until every body is searchable (the pass returns only
after indexing), messages/second, and peak RSS of the process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from bench.gen_mailbox import chown_tree, generate
from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, conversations, sync, workspace
from salesinbox.services.accounts import AccountInput
from salesinbox.services.sync_status import account_statuses
from salesinbox.settings import Settings
from tests.rig.dovecot import Dovecot
from tests.support.databases import ThrowawayDatabase

USER, PASSWORD = "bench@speed.test", "bench-pass"


async def _poll(deps, actor, marks: dict[str, float], start: float, done: asyncio.Event) -> None:
    while not done.is_set():
        listed = await conversations.list_conversations(deps, actor, folder="inbox", limit=50)
        if len(listed) >= 50 and "first_50_conversations_s" not in marks:
            marks["first_50_conversations_s"] = round(time.perf_counter() - start, 2)
        await asyncio.sleep(0.05)


async def _run(settings: Settings, dovecot: Dovecot) -> dict:
    runtime = bootstrap.build_runtime(settings)
    deps = runtime.deps
    try:
        await workspace.initialize_company(deps, company_name="Speed Ltd", admin_email="admin@speed.test",
                                           admin_password="Adm1n-pass!")
        actor = await workspace.authenticate(deps, "admin@speed.test", "Adm1n-pass!")
        view = await accounts.connect_account(deps, actor, AccountInput(
            address=USER, login=USER, password=PASSWORD, imap_host=dovecot.host, imap_port=dovecot.imap_port,
            imap_security=Security.NONE, smtp_host=dovecot.host, smtp_port=dovecot.submission_port,
            smtp_security=Security.NONE, sync_start=SyncStart.EVERYTHING), verify=False)
        marks: dict[str, float] = {}
        done = asyncio.Event()
        start = time.perf_counter()
        poller = asyncio.create_task(_poll(deps, actor, marks, start, done))
        report = await sync.sync_account_once(deps, view.id)
        marks["all_searchable_s"] = round(time.perf_counter() - start, 2)
        done.set()
        await poller
        status = (await account_statuses(deps, [view.id]))[0]
        marks["all_listed_s"] = marks["all_searchable_s"]  # listing reads the same committed rows
        marks.update(messages=status.messages, synced=status.synced, server_total=status.server_total,
                     conversations=status.conversations, fetched=report.fetched,
                     messages_per_s=round(report.fetched / marks["all_searchable_s"], 1))
        return marks
    finally:
        await runtime.close()


def run(backend: str, count: int = 10_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp, Dovecot() as dovecot:
        dovecot.add_user(USER, PASSWORD)
        maildir = dovecot.directory / "mail" / USER / "Maildir"
        size = generate(maildir, count)
        chown_tree(dovecot.directory / "mail" / USER)
        db = ThrowawayDatabase(backend, Path(tmp)).create()
        settings = Settings(data_dir=Path(tmp) / "data", database_url=db.url, secret_keys=generate_key())
        try:
            result = asyncio.run(_run(settings, dovecot))
        finally:
            db.drop()
    result.update(backend=backend, count=count, megabytes=round(size / 1e6),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "sqlite",
                         int(sys.argv[2]) if len(sys.argv) > 2 else 10_000)))
