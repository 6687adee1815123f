"""Real `salesinbox worker` processes against one database, as a scaled-out deployment runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.server import free_port

CLI = Path(sys.executable).with_name("salesinbox")
SRC = Path(__file__).resolve().parents[2] / "src"


class Worker:
    def __init__(self, role: str, env: dict[str, str], logs: Path, *, name: str) -> None:
        self.role, self.name = role, name
        self.port = free_port() if role == "web" else None
        self.url = f"http://127.0.0.1:{self.port}" if self.port else None
        self.log = logs / f"{name}.log"
        extra = {"SALESINBOX_PORT": str(self.port)} if self.port else {}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(CLI), "worker", "--role", role],
                env={**env, **extra, "PYTHONPATH": str(SRC)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_hard(self) -> None:
        """kill -9: no shutdown code runs, its leases stay behind until they expire."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (the worker releases what it holds); SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                return None
        return self.process.returncode

    def wait_listening(self, timeout: float = 60.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}"
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not listen within {timeout}s")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def worker_env(database_url: str, data_dir: Path, secret_keys: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SALESINBOX_DATABASE_URL": database_url,
        "SALESINBOX_DATA_DIR": str(data_dir),
        "SALESINBOX_SECRET_KEYS": secret_keys,
        **extra,
    }
