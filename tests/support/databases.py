"""Throwaway databases: a SQLite file in a temp dir, or a fresh PostgreSQL database
created for the test session and dropped after it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg

from salesinbox.adapters.db import migrate

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

    def drop(self) -> None:
        if self.backend == "postgresql":
            with psycopg.connect(_libpq(PG_ADMIN), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
