"""Faults, measured: the fault-injection suites run long (1,000 trials per backend by default).

Runs tests/integration/test_sync_faults.py and test_write_faults.py under
pytest with ``SALESINBOX_FAULT_TRIALS`` set: connections cut at a random byte
during FETCH, IDLE, SEARCH, APPEND, STORE and MOVE against the rig's real
Dovecot, through the fault proxy (tests/support/faulty_proxy.py). The suites
themselves write the totals, per kind and summed, to
bench/results/faults-<backend>.json (trials, cuts, lost, duplicated, stale
writes); this adds how long each backend took and whether the suites passed.

    python -m bench.faults [TRIALS]        # default 1000; BENCH_FAULT_SEED changes the seed
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SUITES = ["tests/integration/test_sync_faults.py", "tests/integration/test_write_faults.py"]


def run(backend: str, trials: int) -> dict:
    env = {
        **os.environ,
        "SALESINBOX_FAULT_TRIALS": str(trials),
        "SALESINBOX_TEST_DATABASES": backend,
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.setdefault("SALESINBOX_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    if "BENCH_FAULT_SEED" in os.environ:
        env["SALESINBOX_FAULT_SEED"] = os.environ["BENCH_FAULT_SEED"]
    path = RESULTS / f"faults-{backend}.json"
    path.unlink(missing_ok=True)  # the suites write it afresh
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(path.read_text()) if path.exists() else {}
    result.update(
        {"backend": backend, "seconds": round(time.perf_counter() - started, 1), "passed": done.returncode == 0}
    )
    if done.returncode:
        result["failure"] = {
            "returncode": done.returncode,
            "stdout": done.stdout[-4000:],
            "stderr": done.stderr[-4000:],
        }
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for backend in ("sqlite", "postgresql"):
        result = run(backend, trials)
        print(json.dumps({k: v for k, v in result.items() if k != "failure"}))


if __name__ == "__main__":
    main()
