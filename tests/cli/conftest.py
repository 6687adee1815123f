"""The CLI under test: a fresh database and data dir per test module, as an operator would have."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.cli.runner import si
from tests.support.databases import ThrowawayDatabase


@pytest.fixture(scope="module")
def cli_env(backend: str, workdir: Path):
    db = ThrowawayDatabase(backend, workdir)  # the CLI migrates an empty database itself
    if backend == "postgresql":
        db.create()
    data_dir = workdir / f"cli-{backend}-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    env = {**os.environ, "SALESINBOX_DATA_DIR": str(data_dir), "SALESINBOX_DATABASE_URL": db.url}
    yield env
    db.drop()


@pytest.fixture(scope="module")
def company(cli_env):
    si(cli_env, "init", "--company", "Acme Ltd", "--admin-email", "admin@acme.test",
       "--admin-password", "Adm1n-pass!", "--plan", "growth")
    si(cli_env, "user", "add", "--email", "rep@acme.test", "--password", "Rep-pass-1!")
    si(cli_env, "user", "add", "--email", "boss@acme.test", "--password", "Boss-pass-1!", "--admin")
    return cli_env


