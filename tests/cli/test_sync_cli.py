"""The sync CLI contract: `sync ID --once`, `status --json`, `account add --sync-since`."""

from __future__ import annotations

import datetime as dt
import json
from email.message import EmailMessage
from pathlib import Path

import httpx
from imapclient import IMAPClient

from tests.cli.runner import account_args, last_line, si
from tests.conftest import make_settings
from tests.support.server import LiveServer


def _mail(to: str, subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "client@far.example", to, subject
    message.set_content(body)
    return bytes(message)


def test_sync_once_mirrors_the_mailbox_and_status_reports_it(company, dovecot, mailbox):
    for i in range(3):
        dovecot.deliver(mailbox.address, _mail(mailbox.address, f"Order {i}", f"quokka number {i}"))
    account_id = last_line(si(company, *account_args(mailbox), "--sync-since", "all").stdout)
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        client.append("INBOX", _mail(mailbox.address, "Order 3", "quokka from long ago"),
                      msg_time=dt.datetime(2012, 1, 2, 9, tzinfo=dt.UTC))

    result = si(company, "sync", account_id, "--once")
    assert result.returncode == 0

    statuses = {s["id"]: s for s in json.loads(si(company, "status", "--json").stdout)}
    mine = statuses[account_id]
    assert mine["address"] == mailbox.address and mine["state"] == "idle"
    # --sync-since all: the message from 2012 comes too
    assert (mine["server_total"], mine["synced"], mine["messages"], mine["conversations"]) == (4, 4, 4, 4)
    assert mine["last_sync"] and mine["last_error"] is None

    token = last_line(si(company, "token", "create", "--user", "rep@acme.test").stdout)
    server = LiveServer(make_settings(company["SALESINBOX_DATABASE_URL"],
                                      Path(company["SALESINBOX_DATA_DIR"]))).start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        found = httpx.get(server.url + "/api/v1/conversations", params={"folder": "inbox", "q": "quokka"},
                          headers=headers).json()
        assert sorted(c["subject"] for c in found) == ["Order 0", "Order 1", "Order 2", "Order 3"]
        one = httpx.get(server.url + f"/api/v1/conversations/{found[0]['id']}", headers=headers).json()
        assert "quokka" in one["messages"][0]["text"]
    finally:
        server.stop()


def test_sync_once_with_a_wrong_password_exits_1_and_status_says_why(company, mailbox):
    account_id = last_line(si(company, *account_args(mailbox, address=f"bad-{mailbox.address}",
                                                     password="wrong")).stdout)
    result = si(company, "sync", account_id, "--once", ok=False)
    assert result.returncode == 1
    statuses = {s["id"]: s for s in json.loads(si(company, "status", "--json").stdout)}
    assert statuses[account_id]["state"] == "failed" and "password" in statuses[account_id]["last_error"]


def test_send_delivers_once_files_one_copy_in_sent_and_honours_the_idempotency_key(company, dovecot, mailbox,
                                                                                    smtp_server):
    account_id = last_line(si(company, *account_args(mailbox), "--sync-since", "all").stdout)
    assert si(company, "sync", account_id, "--once").returncode == 0
    args = ("send", "--account", account_id, "--to", mailbox.address, "--subject", "Quote 42", "--text", "Hello",
            "--idempotency-key", "quote-42")

    first = si(company, *args)
    second = si(company, *args)
    injected = si(company, "send", "--account", account_id, "--to", mailbox.address,
                  "--subject", "Inject\r\nBcc: evil@attacker.test", "--text", "x")

    assert first.returncode == 0 and second.returncode == 0 and injected.returncode == 0
    assert last_line(first.stdout) == last_line(second.stdout)
    with IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.login, mailbox.password)
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["SUBJECT", "Quote 42"])) == 1
        client.select_folder("Sent", readonly=True)
        assert len(client.search(["SUBJECT", "Quote 42"])) == 1
    assert all("evil@attacker.test" not in e.rcpt_tos for e in smtp_server.envelopes)


def test_send_to_a_refused_address_exits_1_with_the_reason(company, mailbox):
    account_id = last_line(si(company, *account_args(mailbox)).stdout)
    result = si(company, "send", "--account", account_id, "--to", "not an address", "--text", "x", ok=False)
    assert result.returncode == 1 and "not an email address" in result.stderr
