"""`kill -9` in the middle of an initial sync, then a restart: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.gen_mailbox import chown_tree, generate
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts
from salesinbox.services.accounts import AccountInput
from salesinbox.services.sync_status import account_statuses

CLI = Path(sys.executable).with_name("salesinbox")
COUNT = 600


async def test_a_killed_initial_sync_resumes_with_nothing_lost_or_duplicated(deps, settings, tenant, dovecot, mailbox):
    home = dovecot.directory / "mail" / mailbox.address
    generate(home / "Maildir", COUNT, seed=7, me=mailbox.address)
    chown_tree(home)
    view = await accounts.connect_account(deps, tenant.admin, AccountInput(
        address=mailbox.address, login=mailbox.login, password=mailbox.password, imap_host=mailbox.imap_host,
        imap_port=mailbox.imap_port, imap_security=Security.NONE, smtp_host=mailbox.smtp_host,
        smtp_port=mailbox.smtp_port, smtp_security=Security.NONE, sync_start=SyncStart.EVERYTHING), verify=False)
    env = {**os.environ, "SALESINBOX_DATA_DIR": str(settings.resolved_data_dir),
           "SALESINBOX_DATABASE_URL": settings.resolved_database_url,
           "SALESINBOX_SECRET_KEYS": settings.secret_keys.get_secret_value()}
    command = [str(CLI), "sync", str(view.id), "--once"]

    victim = await asyncio.create_subprocess_exec(*command, env=env, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while (await account_statuses(deps, [view.id]))[0].synced < 100:
            assert victim.returncode is None, "the sync finished before it could be killed: make the mailbox bigger"
            assert time.monotonic() < deadline, "the first sync never got going"
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
    finally:
        await asyncio.wait_for(victim.wait(), timeout=30)
    partial = (await account_statuses(deps, [view.id]))[0]
    assert partial.synced < COUNT

    resumed = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr

    final = (await account_statuses(deps, [view.id]))[0]
    assert (final.state, final.server_total, final.synced, final.messages) == ("idle", COUNT, COUNT, COUNT)
