"""Shared fixtures. Every database-backed test runs on SQLite and on PostgreSQL:
the ``backend`` fixture is parametrised over both (``SALESINBOX_TEST_DATABASES``
narrows it)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from salesinbox import bootstrap
from salesinbox.adapters.secrets import generate_key
from salesinbox.domain.tenancy import Actor
from salesinbox.services import accounts, tokens, workspace
from salesinbox.services.unit_of_work import Deps
from salesinbox.settings import Settings
from tests.support.databases import BACKENDS, ThrowawayDatabase
from tests.support.secrets_audit import DUMPS, SEEDED, LogRecorder, leaks, seeded
from tests.support.server import LiveServer

pytest_plugins = ["tests.rig.plugin"]

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="salesinbox-tests-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def database(backend: str, workdir: Path) -> Iterator[ThrowawayDatabase]:
    db = ThrowawayDatabase(backend, workdir).create()
    yield db
    db.drop()


def make_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, secret_keys=generate_key())


@pytest.fixture(scope="session")
def settings(database: ThrowawayDatabase, workdir: Path) -> Settings:
    data_dir = workdir / f"data-{database.backend}"
    data_dir.mkdir(exist_ok=True)
    return make_settings(database.url, data_dir)


@pytest.fixture(scope="session")
async def deps(settings: Settings) -> AsyncIterator[Deps]:
    runtime = bootstrap.build_runtime(settings)
    yield runtime.deps
    await runtime.close()


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(settings).start()
    yield server
    server.stop()


@dataclass
class Tenant:
    """A company with an admin, as the tests' starting point."""

    company_id: object
    admin: Actor
    admin_email: str
    admin_password: str


async def create_tenant(deps: Deps, *, name: str = "Acme Ltd", plan: str = "growth") -> Tenant:
    email = f"admin-{secrets.token_hex(4)}@acme.test"
    password = secrets.token_urlsafe(12)
    company, _ = await workspace.initialize_company(deps, company_name=name, admin_email=email,
                                                    admin_password=password, plan=plan)
    actor = await workspace.authenticate(deps, email, password)
    return Tenant(company.id, actor, email, password)


@pytest.fixture
async def tenant(deps: Deps) -> Tenant:
    return await create_tenant(deps)


# ---- the secrets audit ----------------------------------------------------------------


def _record_secrets(module, name: str, pick) -> None:
    original = getattr(module, name)

    async def recording(*args, **kwargs):
        result = await original(*args, **kwargs)
        for secret in pick(args, kwargs, result):
            if secret:
                seeded(secret)
        return result

    setattr(module, name, recording)


@pytest.fixture(scope="session", autouse=True)
def secrets_audit(workdir: Path) -> Iterator[None]:
    """After the whole suite: no seeded password or token in any database dump or log line."""
    recorder = LogRecorder()
    recorder.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(recorder)
    previous_level = root.level
    root.setLevel(logging.INFO)
    patch = pytest.MonkeyPatch()
    with patch.context() as mp:
        for module, name, pick in [
            (workspace, "initialize_company", lambda a, k, r: [k.get("admin_password")]),
            (workspace, "add_user", lambda a, k, r: [k.get("password")]),
            (tokens, "create_token", lambda a, k, r: [r.secret]),
            (accounts, "connect_account", lambda a, k, r: [a[2].password]),
            (accounts, "test_connection", lambda a, k, r: [a[2].password]),
        ]:
            mp.setattr(module, name, getattr(module, name))  # restored at the end
            _record_secrets(module, name, pick)
        yield
    root.removeHandler(recorder)
    root.setLevel(previous_level)
    texts = [("log lines", "\n".join(recorder.lines))]
    texts += [(str(path), path.read_text(errors="replace")) for path in workdir.rglob("*.log")]
    texts += DUMPS
    found = {what: hits for what, text in texts if (hits := leaks(text))}
    if DUMPS:  # a run of pure tests creates no database and seeds nothing
        assert SEEDED, "the audit saw no secrets: it would pass whatever leaked"
    assert not found, f"seeded secrets leaked: {found}"
