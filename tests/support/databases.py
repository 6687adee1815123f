"""Throwaway databases: a SQLite file in a temp dir, or a fresh PostgreSQL database
created for the test session and dropped after it."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psycopg

from salesinbox.adapters.db import migrate
from tests.support.secrets_audit import record_dump

PG_ADMIN = os.environ.get("SALESINBOX_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("SALESINBOX_TEST_DATABASES", "sqlite,postgresql").split(",") if b]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class ThrowawayDatabase:
    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        name = f"salesinbox_test_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            self.url = f"sqlite+aiosqlite:///{workdir / (name + '.db')}"
        else:
            self.name = name
            self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name

    def create(self) -> ThrowawayDatabase:
        if self.backend == "postgresql":
            with psycopg.connect(_libpq(PG_ADMIN), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        migrate.upgrade(self.url)
        return self

    def dump(self) -> str:
        """Everything the database holds, as text (SQLite: the raw file and its WAL)."""
        if self.backend == "sqlite":
            path = Path(self.url.split(":///", 1)[1])
            files = [path, path.with_name(path.name + "-wal")]
            return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
        result = subprocess.run(["pg_dump", "--data-only", "--inserts", _libpq(self.url)],
                                capture_output=True, text=True, check=True, timeout=120)
        return result.stdout

    def drop(self) -> None:
        record_dump(f"{self.backend} database {self.url.rsplit('/', 1)[-1]}", self.dump())
        if self.backend == "postgresql":
            with psycopg.connect(_libpq(PG_ADMIN), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
