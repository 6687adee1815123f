"""IDLE at scale: a mail server restart with 200 accounts connected to one sync process.

Every account is back in IDLE within 60 s, the reconnects respect the
process's login-rate cap (spread by jittered backoff, not a herd), and mail
that arrived while the server was down is synced. Runs on PostgreSQL (the
scaled-out database; IDLE itself does not depend on it).
``SALESINBOX_IDLE_ACCOUNTS`` changes the number of accounts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid

import pytest
from sqlalchemy import func, select

from salesinbox import bootstrap
from salesinbox.adapters.db.tables import MailFolder, MessageLocation
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, idle
from salesinbox.services.accounts import AccountInput
from salesinbox.workers.sync_supervisor import supervise
from tests.conftest import create_tenant, make_settings
from tests.rig.dovecot import Dovecot
from tests.support.databases import ThrowawayDatabase
from tests.support.mailboxes import letter
from tests.support.secrets_audit import seeded

ACCOUNTS = int(os.environ.get("SALESINBOX_IDLE_ACCOUNTS", "200"))
BACK_IN_IDLE = 60.0  # the promise

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def big_dovecot():
    with Dovecot(max_connections=4 * ACCOUNTS) as server:
        yield server


@pytest.fixture(scope="module")
async def runtime(workdir):
    db = ThrowawayDatabase("postgresql", workdir).create()
    data_dir = workdir / f"idle-{uuid.uuid4().hex[:6]}"
    data_dir.mkdir()
    runtime = bootstrap.build_runtime(make_settings(db.url, data_dir))
    yield runtime
    await runtime.close()
    db.drop()


class CountingLogins:
    """Wraps the connection factory: when each login started (the rate cap is checked on these)."""

    def __init__(self, open_mailbox) -> None:
        self.open_mailbox, self.times = open_mailbox, []

    def __call__(self, login):
        session = self.open_mailbox(login)
        connect = session.connect

        def counted():
            self.times.append(time.monotonic())
            return connect()

        session.connect = counted
        return session


async def inbox_counts(deps, company_id) -> dict[uuid.UUID, int]:
    async with deps.reading() as db:
        rows = await db.execute(
            select(MailFolder.account_id, func.count(MessageLocation.uid))
            .join(
                MessageLocation,
                (MessageLocation.company_id == MailFolder.company_id) & (MessageLocation.folder_id == MailFolder.id),
                isouter=True,
            )
            .where(MailFolder.company_id == company_id, MailFolder.role == "inbox")
            .group_by(MailFolder.account_id)
        )
        return dict(rows.all())


async def until(what: str, probe, within: float, describe=None):
    deadline = time.monotonic() + within
    while not (result := await probe()):
        if time.monotonic() >= deadline:
            detail = await describe() if describe else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}: {detail}")
        await asyncio.sleep(0.25)
    return result


async def test_after_a_server_restart_every_account_is_back_in_idle_within_a_minute(runtime, big_dovecot):
    server = big_dovecot
    logins = CountingLogins(runtime.deps.open_mailbox)
    deps = dataclasses.replace(runtime.deps, open_mailbox=logins)
    tenant = await create_tenant(deps)
    addresses, ids = [], []
    for _ in range(ACCOUNTS):
        address, password = f"i{uuid.uuid4().hex[:10]}@example.test", seeded(uuid.uuid4().hex)
        server.add_user(address, password)
        view = await accounts.connect_account(
            deps,
            tenant.admin,
            AccountInput(
                address=address,
                login=address,
                password=password,
                imap_host=server.host,
                imap_port=server.imap_port,
                imap_security=Security.NONE,
                smtp_host=server.host,
                smtp_port=server.imap_port,
                smtp_security=Security.NONE,
                sync_start=SyncStart.EVERYTHING,
            ),
            verify=False,
        )
        addresses.append(address)
        ids.append(view.id)

    async def in_idle_since(moment: float):
        waiting = idle.idling()
        return all(waiting.get(a, -1.0) > moment for a in ids)

    stop = asyncio.Event()
    task = asyncio.create_task(supervise(deps, stop, ids))
    try:
        await until("every account in IDLE", lambda: in_idle_since(0.0), 300)
        late = addresses[::10]

        def deliver_while_down():
            for address in late:
                server.drop_into_inbox(address, letter(address, "While the server was down"))

        went_down = time.monotonic()
        await asyncio.to_thread(server.restart, while_down=deliver_while_down)

        async def describe():
            from collections import Counter

            from salesinbox.services.sync_status import account_statuses

            waiting = idle.idling()
            statuses = await account_statuses(deps, ids)
            return (
                f"{sum(waiting.get(a, -1.0) > went_down for a in ids)} back in IDLE; "
                f"states {Counter(s.state for s in statuses)}; errors {Counter(s.last_error for s in statuses)}; "
                f"{len([t for t in logins.times if t > went_down])} logins since the restart"
            )

        await until("every account back in IDLE", lambda: in_idle_since(went_down), BACK_IN_IDLE, describe)

        expected = {a: (1 if addresses[ids.index(a)] in late else 0) for a in ids}
        await until(
            "the mail delivered while the server was down",
            lambda: _equal(inbox_counts(deps, tenant.company_id), expected),
            60,
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)

    after = sorted(t for t in logins.times if t > went_down)
    assert len(after) >= ACCOUNTS  # every account logged in again ...
    busiest = max(sum(1 for t in after if start <= t < start + 1.0) for start in after)
    assert busiest <= idle.LOGIN_RATE + 1, busiest  # ... never faster than the cap


async def _equal(counts, expected) -> bool:
    return await counts == expected
