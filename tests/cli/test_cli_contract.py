"""The CLI contract, exactly as other tools and the acceptance checks call it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cli.runner import account_args, last_line, si
from tests.conftest import make_settings
from tests.support.server import LiveServer


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
             "h:1", "--smtp", "h:2", "--login", "g", "--password", "Ghost-pass-1!", ok=False)
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
