"""Shared fixtures. Every database-backed test runs on SQLite and on PostgreSQL:
the ``backend`` fixture is parametrised over both (``SALESINBOX_TEST_DATABASES``
narrows it)."""

from __future__ import annotations

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
from salesinbox.services import workspace
from salesinbox.services.unit_of_work import Deps
from salesinbox.settings import Settings
from tests.support.databases import BACKENDS, ThrowawayDatabase
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
