"""The crash matrix of the outbox (issue 5): the sending process killed with SIGKILL at each step, then
restarted in a new process. Nothing is lost; exactly one complete delivery every time; outside the
outcome-unknown window the message ends "sent" with exactly one copy in Sent; inside it the message is
marked outcome_unknown, with the reason, and never sent again.

Each kill is exact, not timed: the SMTP server (tests/support/stepwise_smtp.py) holds the sender at a step
and says so; "the sender is about to commit" is made to last by holding the lock its commit needs; "sent,
the Sent copy not filed yet" by a proxy in front of Dovecot that forwards nothing. The sending and the
restarted processes are the real CLI, ``salesinbox outbox deliver --once``, on SQLite and PostgreSQL. Both
are started ahead: the entry point of the ``salesinbox`` script, its imports done (a second of CPU each),
waiting for a line on stdin before it reads its arguments; the restart is told to go only after the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from imapclient import IMAPClient
from sqlalchemy import select, update

from salesinbox.adapters.db.tables import OutboundMessage
from salesinbox.services import outbox
from salesinbox.services.outbox import OutgoingMessage
from tests.support.faulty_proxy import FaultyProxy
from tests.support.mailboxes import connect_mailbox
from tests.support.stepwise_smtp import StepwiseSmtp

DEADLINE = 15.0  # seconds any one wait may take
# The `salesinbox` console script (salesinbox.cli:main), held at its start until told to go.
READY_CLI = "import sys; from salesinbox.cli import main; sys.stdin.readline(); sys.argv[0] = 'salesinbox'; main()"


@contextlib.asynccontextmanager
async def ready_cli(env: dict[str, str], *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A CLI process waiting to be told to go; killed on the way out if it is still there."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", READY_CLI, *args, env=env,
                                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def go(process: asyncio.subprocess.Process) -> None:
    process.stdin.write(b"go\n")
    await process.stdin.drain()


@dataclass
class Crash:
    """Everything one run of the matrix touches."""

    deps: object
    smtp: StepwiseSmtp
    imap: FaultyProxy
    outbound: outbox.OutboundView
    company_id: object
    victim: asyncio.subprocess.Process | None = None

    async def until(self, step: Awaitable[None]) -> None:
        """Wait for ``step``, failing at once (with its last words) if the sender exits by itself first."""
        step_task, exit_task = asyncio.ensure_future(step), asyncio.ensure_future(self.victim.wait())
        done, _ = await asyncio.wait({step_task, exit_task}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
        exit_task.cancel()
        if step_task not in done:
            step_task.cancel()
            stderr = (await self.victim.stderr.read()).decode(errors="replace") if exit_task in done else ""
            raise AssertionError(f"the sender never got there (exit {self.victim.returncode}): {stderr[-2000:]}")
        step_task.result()

    @contextlib.asynccontextmanager
    async def commit_blocked(self) -> AsyncIterator[None]:
        """Hold the lock the sender's next commit needs: SQLite's write lock, PostgreSQL's lock on the row."""
        async with self.deps.writing() as db:
            await db.execute(select(OutboundMessage.id).where(
                OutboundMessage.company_id == self.company_id, OutboundMessage.id == self.outbound.id,
            ).with_for_update())
            yield

    async def imap_connection(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.imap.stats().connections == 0:
            assert time.monotonic() < deadline, "the sender never connected to IMAP"
            await asyncio.sleep(0.01)


async def before_connect(crash: Crash) -> None:
    await crash.until(crash.smtp.reached("greeting"))


async def after_mail_from(crash: Crash) -> None:
    await crash.until(crash.smtp.reached("MAIL"))


async def after_rcpt(crash: Crash) -> None:
    await crash.until(crash.smtp.reached("RCPT"))


async def mid_data(crash: Crash) -> None:
    await crash.until(crash.smtp.reached("DATA"))
    async with crash.commit_blocked():  # the text goes out, the final dot waits for "handed over" to commit
        crash.smtp.go()
        await crash.until(crash.smtp.reached("body"))
        await kill(crash.victim)


async def after_the_dot_before_the_reply(crash: Crash) -> None:
    await crash.until(crash.smtp.reached("dot"))


async def after_the_reply_before_the_commit(crash: Crash) -> None:
    await crash.until(crash.smtp.reached("dot"))
    async with crash.commit_blocked():
        crash.smtp.go()
        await crash.until(crash.smtp.reached("QUIT"))  # it read the 250: QUIT comes after it
        await kill(crash.victim)


async def after_the_commit_before_the_append(crash: Crash) -> None:
    await crash.until(crash.imap_connection())  # IMAP is opened only once "sent" is committed


@dataclass(frozen=True)
class Step:
    drive: Callable[[Crash], Awaitable[None]]
    pause_at: str | None  # where the SMTP server holds the sender
    left: tuple[str, bool]  # the row's (status, handed_over) in the database at the kill
    outcome: str  # after the restart


MATRIX = {
    "before connect": Step(before_connect, "greeting", ("sending", False), "sent"),
    "after MAIL FROM": Step(after_mail_from, "MAIL", ("sending", False), "sent"),
    "after RCPT": Step(after_rcpt, "RCPT", ("sending", False), "sent"),
    "mid-DATA": Step(mid_data, "DATA", ("sending", False), "sent"),
    "after the final dot, before the reply": Step(after_the_dot_before_the_reply, "dot", ("sending", True),
                                                  "outcome_unknown"),
    "after the reply, before the commit": Step(after_the_reply_before_the_commit, "dot", ("sending", True),
                                               "outcome_unknown"),
    "after the commit, before the Sent APPEND": Step(after_the_commit_before_the_append, None, ("sent", True),
                                                     "sent"),
}


def cli_env(settings) -> dict[str, str]:
    """The environment of a CLI process working on the tests' database and data dir."""
    return {**os.environ, "SALESINBOX_DATA_DIR": str(settings.resolved_data_dir),
            "SALESINBOX_DATABASE_URL": settings.resolved_database_url,
            "SALESINBOX_SECRET_KEYS": settings.secret_keys.get_secret_value()}


async def kill(victim: asyncio.subprocess.Process) -> None:
    if victim.returncode is None:
        victim.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(victim.wait(), DEADLINE) == -signal.SIGKILL, "the sender was not killed mid-step"


def copies_in_sent(box, message_id: str) -> int:
    with IMAPClient(box.imap_host, port=box.imap_port, ssl=False, timeout=10) as client:
        client.login(box.login, box.password)
        client.select_folder("Sent", readonly=True)
        return len(client.search(["HEADER", "Message-ID", message_id]))


async def row_state(deps, company_id, outbound_id) -> tuple[str, bool]:
    async with deps.reading() as db:
        row = await db.get(OutboundMessage, (company_id, outbound_id), populate_existing=True)
        return row.status, row.handed_over


@pytest.mark.parametrize("step", list(MATRIX))
async def test_a_sender_killed_at_each_step_loses_nothing_and_delivers_once(step, deps, settings, tenant, dovecot,
                                                                             mailbox_factory):
    plan = MATRIX[step]
    me = mailbox_factory()
    env = cli_env(settings)
    async with StepwiseSmtp(pause_at=plan.pause_at) as smtp:
        with FaultyProxy(dovecot.imap_port, lifetime=120) as imap:
            account_id = await connect_mailbox(deps, tenant.admin, me, synced=False, smtp_host="127.0.0.1",
                                               smtp_port=smtp.port, imap_host=imap.host, imap_port=imap.port)
            queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(
                account_id, to=["buyer@customer.example"], subject=f"Quote ({step})", text="Our quote.\n" * 50))
            deliver_once = ["outbox", "deliver", "--once", "--account", str(account_id)]
            crash = Crash(deps, smtp, imap, queued, tenant.company_id)
            if plan.drive is after_the_commit_before_the_append:
                imap.hold()
            async with ready_cli(env, *deliver_once) as crash.victim, ready_cli(env, *deliver_once) as restart:
                try:
                    await go(crash.victim)
                    await plan.drive(crash)
                    await kill(crash.victim)
                finally:
                    imap.release()
                    smtp.go()
                assert await row_state(deps, tenant.company_id, queued.id) == plan.left

                _, err = await asyncio.wait_for(restart.communicate(b"go\n"), 60)
                assert restart.returncode == 0, err.decode(errors="replace")

    view = await outbox.get_outbound(deps, tenant.admin, queued.id)
    assert view.status == plan.outcome, view.last_error
    assert len(smtp.deliveries) == 1  # exactly one complete DATA, whatever the step
    assert queued.message_id.encode() in smtp.deliveries[0]
    if plan.outcome == "sent":
        assert copies_in_sent(me, queued.message_id) == 1
    else:  # marked, with the reason, never sent again; no Sent copy of a message not known to be sent
        assert "may have been delivered" in view.last_error
        assert smtp.transactions == 1
        assert copies_in_sent(me, queued.message_id) == 0


async def test_a_sender_stalled_until_its_message_was_queued_again_never_sends_the_final_dot(deps, tenant,
                                                                                             mailbox_factory):
    async with StepwiseSmtp(pause_at="DATA") as smtp:
        account_id = await connect_mailbox(deps, tenant.admin, mailbox_factory(), synced=False,
                                           smtp_host="127.0.0.1", smtp_port=smtp.port)
        queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], subject="x"))
        stalled = asyncio.create_task(outbox.deliver(deps, tenant.company_id, queued.id))
        await asyncio.wait_for(smtp.reached("DATA"), DEADLINE)
        async with deps.writing() as db:  # still for longer than a live sender may be
            await db.execute(update(OutboundMessage).where(OutboundMessage.id == queued.id).values(
                updated_at=dt.datetime.now(dt.UTC) - outbox.STALE_SENDING * 2))
        await outbox.recover(deps, account_id=account_id)  # not handed over: queued again
        smtp.go()

        assert await asyncio.wait_for(stalled, DEADLINE) == "queued"  # it hung up before the dot
        assert smtp.deliveries == []
        assert await asyncio.wait_for(outbox.deliver(deps, tenant.company_id, queued.id), DEADLINE) == "sent"
    assert len(smtp.deliveries) == 1


async def test_salesinbox_send_killed_after_rcpt_and_run_again_with_its_key_delivers_once(deps, settings, tenant,
                                                                                          mailbox_factory):
    me = mailbox_factory()
    async with StepwiseSmtp(pause_at="RCPT") as smtp:
        account_id = await connect_mailbox(deps, tenant.admin, me, synced=False, smtp_host="127.0.0.1",
                                           smtp_port=smtp.port)
        send = ["send", "--account", str(account_id), "--to", "buyer@customer.example", "--subject", "Again",
                "--idempotency-key", "quote-7", "--wait", "10"]
        env = cli_env(settings)
        async with ready_cli(env, *send) as victim, ready_cli(env, *send) as again:
            crash = Crash(deps, smtp, None, None, tenant.company_id, victim)
            try:
                await go(victim)
                await crash.until(smtp.reached("RCPT"))
                await kill(victim)
            finally:
                smtp.go()
            _, err = await asyncio.wait_for(again.communicate(b"go\n"), 60)
            assert again.returncode == 0, err.decode(errors="replace")
    async with deps.reading() as db:
        row = await db.scalar(select(OutboundMessage).where(OutboundMessage.company_id == tenant.company_id,
                                                            OutboundMessage.idempotency_key == "quote-7"))
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(smtp.deliveries) == 1 and smtp.transactions == 2
    assert copies_in_sent(me, row.message_id_header) == 1
