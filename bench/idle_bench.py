"""Capacity benchmark (step 6): many accounts in IDLE in one sync process, and new mail to live streams.

On PostgreSQL, with real processes as deployed: one `salesinbox worker --role
sync` holding every account (BENCH_IDLE_ACCOUNTS, 500) and one `--role web`.

Measures:
- how long until every account waits in IDLE (the sync process holds one
  established IMAP connection per account and every account is "idle"), and the
  sync process's RSS then (its own, and with its child processes);
- new mail → visible over SSE: a stream of the admin (who sees every account)
  is open on the web process while mail is delivered at BENCH_DELIVERY_RATE
  (20/s) to random accounts for BENCH_DELIVERY_SECONDS (30). Each "mail" event
  carries the inbox version, whose third field counts the stored messages;
  delivery k is visible at the first event whose count reaches k. p50 / p95 / max.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import threading
import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx

from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, workspace
from salesinbox.services.accounts import AccountInput
from salesinbox.services.sync_status import account_statuses
from salesinbox.settings import Settings
from tests.rig.dovecot import Dovecot
from tests.support.databases import ThrowawayDatabase
from tests.support.fleet import Worker, worker_env
from tests.support.http import logged_in_session

ADMIN, ADMIN_PASSWORD = "admin@idle.test", "Adm1n-pass!"


def _letter(to: str, n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "buyer@customer.example", to, f"Bench {n}"
    message["Message-ID"] = make_msgid(domain="customer.example")
    message.set_content(f"Bench message {n}")
    return bytes(message)


def _rss_mb(pid: int) -> tuple[float, float]:
    """(RSS of the process, RSS of it and its children) in MB."""

    def one(p: int) -> int:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    own = one(pid)
    return round(own / 1024, 1), round((own + sum(one(int(c)) for c in children)) / 1024, 1)


def _imap_connections(pid: int, port: int) -> int:
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return sum(1 for line in out.splitlines() if f"pid={pid}," in line)


async def _setup(settings: Settings, dovecot: Dovecot, count: int) -> tuple[list[str], list[uuid.UUID]]:
    runtime = bootstrap.build_runtime(settings)
    try:
        deps = runtime.deps
        await workspace.initialize_company(
            deps, company_name="Idle Ltd", admin_email=ADMIN, admin_password=ADMIN_PASSWORD
        )
        actor = await workspace.authenticate(deps, ADMIN, ADMIN_PASSWORD)
        addresses, ids = [], []
        for n in range(count):
            address, password = f"idle{n}@idle.test", f"pw-{n}-{uuid.uuid4().hex[:8]}"
            dovecot.add_user(address, password)
            view = await accounts.connect_account(
                deps,
                actor,
                AccountInput(
                    address=address,
                    login=address,
                    password=password,
                    imap_host=dovecot.host,
                    imap_port=dovecot.imap_port,
                    imap_security=Security.NONE,
                    smtp_host=dovecot.host,
                    smtp_port=dovecot.imap_port,
                    smtp_security=Security.NONE,
                    sync_start=SyncStart.EVERYTHING,
                ),
                verify=False,
            )
            addresses.append(address)
            ids.append(view.id)
        return addresses, ids
    finally:
        await runtime.close()


async def _all_idle(settings: Settings, ids: list[uuid.UUID]) -> bool:
    runtime = bootstrap.build_runtime(settings)
    try:
        return all(s.state == "idle" for s in await account_statuses(runtime.deps, ids))
    finally:
        await runtime.close()


def _deliver(dovecot: Dovecot, addresses: list[str], rate: float, seconds: float, sent: list[float]) -> None:
    rng = random.Random(7)
    start = time.monotonic()
    for n in range(int(rate * seconds)):
        due = start + n / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        address = rng.choice(addresses)
        dovecot.deliver(address, _letter(address, n))
        sent.append(time.monotonic())


async def _measure_sse(url: str, dovecot: Dovecot, addresses: list[str], rate: float, seconds: float) -> dict:
    session = await logged_in_session(url, ADMIN, ADMIN_PASSWORD)
    seen: list[tuple[float, int]] = []  # (when, stored messages)
    sent: list[float] = []
    try:
        async with session.http.stream("GET", "/inbox/events", timeout=httpx.Timeout(30, read=None)) as stream:
            lines = stream.aiter_lines()
            base = None
            async for line in lines:  # the "ready" event: the count before any delivery
                if line.startswith("data:"):
                    base = int(line.split(":", 1)[1].strip().split(".")[2])
                    break
            sender = threading.Thread(target=_deliver, args=(dovecot, addresses, rate, seconds, sent))
            sender.start()
            total = int(rate * seconds)
            try:
                deadline = time.monotonic() + seconds + 120
                while (not seen or seen[-1][1] < total) and time.monotonic() < deadline:
                    try:
                        line = await asyncio.wait_for(anext(lines), deadline - time.monotonic())
                    except TimeoutError:
                        break  # reported as fewer "visible" than "deliveries"
                    if line.startswith("data:"):
                        seen.append((time.monotonic(), int(line.split(":", 1)[1].strip().split(".")[2]) - base))
            finally:
                await asyncio.to_thread(sender.join)
    finally:
        await session.aclose()
    latencies = []
    for k, at in enumerate(sent, start=1):
        shown = next((when for when, count in seen if count >= k), None)
        if shown is not None:
            latencies.append(max(0.0, shown - at))
    latencies.sort()
    return {
        "deliveries": len(sent),
        "visible": len(latencies),
        "rate_per_s": rate,
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(latencies[int(len(latencies) * 0.95) - 1], 3) if latencies else None,
        "max_s": round(latencies[-1], 3) if latencies else None,
    }


def run(workdir: Path, count: int, rate: float, seconds: float) -> dict:
    # 1 s: past 128 connections Dovecot cannot use inotify here (tests/rig/dovecot.py), and its own
    # 30 s check would be what is measured; a provider pushes new mail at once.
    with Dovecot(max_connections=4 * count + 100, idle_check_seconds=1) as dovecot:
        db = ThrowawayDatabase("postgresql", workdir).create()
        data_dir = workdir / "idle-data"
        data_dir.mkdir()
        settings = Settings(data_dir=data_dir, database_url=db.url, secret_keys=generate_key())
        workers: list[Worker] = []
        try:
            addresses, ids = asyncio.run(_setup(settings, dovecot, count))
            env = worker_env(db.url, data_dir, settings.secret_keys.get_secret_value())
            started = time.monotonic()
            sync_worker = Worker("sync", env, data_dir, name="sync")
            workers.append(sync_worker)
            while True:
                assert sync_worker.alive(), sync_worker.tail()
                if _imap_connections(sync_worker.pid, dovecot.imap_port) >= count and asyncio.run(
                    _all_idle(settings, ids)
                ):
                    break
                assert time.monotonic() - started < 900, "not every account reached IDLE in 15 minutes"
                time.sleep(1)
            all_idle_s = round(time.monotonic() - started, 1)
            time.sleep(5)  # settle: the last passes' memory is in the figure
            rss, rss_with_children = _rss_mb(sync_worker.pid)
            web = Worker("web", env, data_dir, name="web")
            workers.append(web)
            web.wait_listening()
            sse = asyncio.run(_measure_sse(web.url, dovecot, addresses, rate, seconds))
            rss_after, _ = _rss_mb(sync_worker.pid)
            return {
                "backend": "postgresql",
                "accounts": count,
                "all_in_idle_s": all_idle_s,
                "imap_connections": _imap_connections(sync_worker.pid, dovecot.imap_port),
                "sync_rss_mb": rss,
                "sync_rss_with_children_mb": rss_with_children,
                "sync_rss_after_deliveries_mb": rss_after,
                "sse": sse,
            }
        finally:
            for worker in workers:
                worker.stop()
            db.drop()


def main() -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        return run(
            Path(tmp),
            int(os.environ.get("BENCH_IDLE_ACCOUNTS", "500")),
            float(os.environ.get("BENCH_DELIVERY_RATE", "20")),
            float(os.environ.get("BENCH_DELIVERY_SECONDS", "30")),
        )


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
