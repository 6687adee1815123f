"""Step 1 benchmark: how fast the CRM core answers, embedded (SQLite) and on PostgreSQL.

Seeds one company with 1,000 persons and 2,000 deals through the services, then
times, against the real app under uvicorn on 127.0.0.1:
- the deals list page (HTML, 200 rows) and GET /api/v1/deals (JSON),
- POST /api/v1/deals (a write through the API, one at a time),
each repeated after ANALYZE (the steady state autovacuum keeps a live database
in); reports p50 / p95 in milliseconds. Results: bench/results/crm-<backend>.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.services import contacts, items, tokens, workspace
from salesinbox.services.contacts import PersonInput
from salesinbox.services.items import ItemInput, ItemKind
from salesinbox.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.databases import ThrowawayDatabase  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PERSONS, DEALS, REPEAT = 1_000, 2_000, 200


async def seed(settings: Settings) -> str:
    runtime = bootstrap.build_runtime(settings)
    deps = runtime.deps
    try:
        await workspace.initialize_company(deps, company_name="Bench Ltd", admin_email="bench@bench.test",
                                           admin_password="Bench-pass-1")
        actor = await workspace.authenticate(deps, "bench@bench.test", "Bench-pass-1")
        people = [await contacts.create_person(deps, actor, PersonInput(name=f"Person {i}",
                  emails=[f"p{i}@customer{i % 50}.test"])) for i in range(PERSONS)]
        for i in range(DEALS):
            await items.create_item(deps, actor, ItemKind.DEAL, ItemInput(
                title=f"Deal {i}", value=str(1000 + i), person_id=people[i % PERSONS].id))
        secret = (await tokens.create_token(deps, actor, "bench")).secret
        # Fresh tables have no planner statistics until autovacuum analyses them;
        # measure the steady state a running installation is in.
        async with runtime.sessions.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
        return secret
    finally:
        await runtime.close()


def timed(call, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2), "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
            "n": repeat}


def run(backend: str, workdir: Path) -> dict:
    db = ThrowawayDatabase(backend, workdir).create()
    settings = Settings(data_dir=workdir / backend, database_url=db.url, secret_keys=generate_key())
    t0 = time.perf_counter()
    token = asyncio.run(seed(settings))
    seed_s = time.perf_counter() - t0
    server = LiveServer(settings).start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            result = {
                "backend": backend, "persons": PERSONS, "deals": DEALS, "seed_seconds": round(seed_s, 1),
                "api_list_deals_200": timed(lambda: api.get("/api/v1/deals"), REPEAT // 4),
                "api_me": timed(lambda: api.get("/api/v1/me"), REPEAT),
                "api_create_deal": timed(lambda: api.post("/api/v1/deals", json={"title": "Bench deal"}), REPEAT),
            }
    finally:
        server.stop()
        db.drop()
    return result


def main() -> None:
    from bench import capacity, sync_bench, versus_mbsync
    from bench.report import write_readme

    if os.environ.get("BENCH_ONLY") == "idle":  # the capacity bench alone (several minutes)
        RESULTS.mkdir(exist_ok=True)
        run_idle({"python": platform.python_version(), "cpus": os.cpu_count()})
        write_readme(RESULTS)
        return
    from bench.report import write_readme

    RESULTS.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql"):
            result = {**run(backend, Path(tmp)), "machine": machine}
            (RESULTS / f"crm-{backend}.json").write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps(result))
    for backend in ("sqlite", "postgresql"):
        result = {**sync_bench.run(backend, int(os.environ.get("BENCH_MESSAGES", "10000"))), "machine": machine}
        (RESULTS / f"sync-{backend}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result))
    versus_mbsync.main([])  # 50,000 messages unless BENCH_VERSUS_MESSAGES says otherwise
    capacity.main([])  # 1,000,000 messages unless BENCH_CAPACITY_MESSAGES says otherwise
    run_idle(machine)
    trials = int(os.environ.get("BENCH_FAULT_TRIALS", "1000"))  # 0 skips the fault-injection run
    if trials:
        from bench import faults

        for backend in ("sqlite", "postgresql"):
            print(json.dumps({k: v for k, v in faults.run(backend, trials).items() if k != "failure"}))
    write_readme(RESULTS)


def run_idle(machine: dict) -> None:
    """Accounts in IDLE in one sync process, and new mail to SSE (bench/idle_bench.py)."""
    from bench import idle_bench

    result = {**idle_bench.main(), "machine": machine}
    (RESULTS / "idle-postgresql.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["capacity"]:  # python -m bench capacity [--messages N] ...: this benchmark alone
        from bench import capacity
        from bench.report import write_readme

        capacity.main(sys.argv[2:])
        write_readme(RESULTS)
    else:
        main()
