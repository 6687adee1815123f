"""The CLI contract, exactly as other tools and the acceptance checks call it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings
from tests.support.databases import ThrowawayDatabase
from tests.support.server import LiveServer

CLI = Path(sys.executable).with_name("salesinbox")


@pytest.fixture(scope="module")
def cli_env(backend: str, workdir: Path):
    db = ThrowawayDatabase(backend, workdir)  # the CLI migrates an empty database itself
    if backend == "postgresql":
        db.create()
    data_dir = workdir / f"cli-{backend}"
    data_dir.mkdir()
    env = {**os.environ, "SALESINBOX_DATA_DIR": str(data_dir), "SALESINBOX_DATABASE_URL": db.url}
    yield env
    db.drop()


def si(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1].strip()


@pytest.fixture(scope="module")
def company(cli_env):
    si(cli_env, "init", "--company", "Acme Ltd", "--admin-email", "admin@acme.test",
       "--admin-password", "Adm1n-pass!", "--plan", "growth")
    si(cli_env, "user", "add", "--email", "rep@acme.test", "--password", "Rep-pass-1!")
    si(cli_env, "user", "add", "--email", "boss@acme.test", "--password", "Boss-pass-1!", "--admin")
    return cli_env


def test_a_second_init_is_refused_for_an_existing_admin_email(company):
    result = si(company, "init", "--company", "Again", "--admin-email", "admin@acme.test",
                "--admin-password", "Adm1n-pass!", ok=False)
    assert result.returncode == 1 and "already exists" in result.stderr


def test_token_create_prints_a_working_api_token_on_the_last_line(company):
    token = last_line(si(company, "token", "create", "--user", "rep@acme.test").stdout)
    server = LiveServer(make_settings(company["SALESINBOX_DATABASE_URL"],
                                      Path(company["SALESINBOX_DATA_DIR"]))).start()
    try:
        me = httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    finally:
        server.stop()
    assert me.status_code == 200 and me.json()["user"]["email"] == "rep@acme.test"


def account_args(mailbox, *, address=None, password=None) -> list[str]:
    return ["account", "add", "--owner", "rep@acme.test", "--address", address or mailbox.address,
            "--imap", f"{mailbox.imap_host}:{mailbox.imap_port}", "--smtp", f"{mailbox.smtp_host}:{mailbox.smtp_port}",
            "--login", mailbox.login, "--password", password or mailbox.password, "--security", "none"]


def test_account_add_prints_the_id_and_account_test_logs_in(company, mailbox):
    account_id = last_line(si(company, *account_args(mailbox)).stdout)
    result = si(company, "account", "test", account_id)
    assert "IMAP and SMTP" in result.stdout


def test_account_test_with_a_wrong_password_explains_and_exits_1(company, mailbox):
    account_id = last_line(si(company, *account_args(mailbox, password="wrong-password")).stdout)
    result = si(company, "account", "test", account_id, ok=False)
    assert result.returncode == 1
    assert "password" in result.stderr.lower() and "wrong-password" not in result.stderr + result.stdout


def test_a_team_account_takes_its_members(company, mailbox):
    args = [*account_args(mailbox), "--team", "--member", "boss@acme.test"]
    account_id = last_line(si(company, *args).stdout)
    assert len(account_id) == 36


def test_an_unknown_owner_or_a_bad_server_is_refused_in_words(company, mailbox):
    bad = si(company, "account", "add", "--owner", "ghost@acme.test", "--address", "g@acme.test", "--imap",
             "h:1", "--smtp", "h:2", "--login", "g", "--password", "p", ok=False)
    assert bad.returncode == 1 and "ghost@acme.test" in bad.stderr
    bad_port = si(company, *account_args(mailbox)[:6], "--imap", "no-port", *account_args(mailbox)[8:], ok=False)
    assert bad_port.returncode != 0 and "HOST:PORT" in bad_port.stderr


def test_keys_rotate_re_encrypts_and_accounts_still_log_in(company, mailbox):
    account_id = last_line(si(company, *account_args(mailbox, address=f"rot-{mailbox.address}")).stdout)
    key_file = Path(company["SALESINBOX_DATA_DIR"]) / "secret.key"
    before = key_file.read_text()
    assert "Re-encrypted" in si(company, "keys", "rotate").stdout
    assert key_file.read_text() != before and len(key_file.read_text().split()) == 1
    si(company, "account", "test", account_id)
