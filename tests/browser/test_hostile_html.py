"""Hostile HTML, end to end: the public XSS and remote-load corpus is delivered as mail to
Dovecot, synced by the app's own sync, and opened through the real reading pane in Chromium.

Watched, for every message: dialogs (alert / confirm / prompt), console output, pop-ups, and
every network request the email frame makes (plus every request anywhere to the attacker's
origin, a local server that counts what reaches it). The sanitised, sandboxed run must show
none. The control run loads the same vectors unsanitised, without sandbox or CSP, through the
same harness: it must catch executions and remote loads, or the harness proves nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_first_steps import fill_account
from tests.browser.test_inbox import set_up
from tests.support.server import LiveServer, free_port
from tests.support.xss_corpus import load_vectors

pytestmark = pytest.mark.browser

PER_MESSAGE = 5


class _Attacker(BaseHTTPRequestHandler):
    """The attacker's origin: records every request; serves the control pages too."""

    hits: list[str] = []
    pages: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/control/"):
            body = self.pages.get(self.path, b"")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
        else:
            type(self).hits.append(self.path)
            body = b""
            self.send_response(204)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def attacker() -> Iterator[str]:
    _Attacker.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Attacker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def groups(attacker) -> list[str]:
    vectors = load_vectors(remote=attacker)
    assert len(vectors) >= 200
    return ["\n<hr>\n".join(vectors[i : i + PER_MESSAGE]) for i in range(0, len(vectors), PER_MESSAGE)]


@dataclass
class Watch:
    """What the harness saw on one page."""

    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page, allowed: re.Pattern[str]) -> None:
        def on_dialog(dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda message: None if _blocked_notice(message.text) else self.console.append(message.text))
        page.on("popup", lambda popup: self.popups.append(popup.url))
        page.on("request", lambda request: None if allowed.match(request.url) else self.requests.append(request.url))


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A page without the suite's "no console errors" check: hostile pages log errors by design."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def _visit(page: Page, url: str) -> None:
    """Load a page and give timers and animations a moment; a page that never finishes loading is left."""
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=5_000)
        page.wait_for_load_state("load", timeout=2_000)
    except PlaywrightError:
        pass
    page.wait_for_timeout(150)


def _blocked_notice(text: str) -> bool:
    """Chromium telling that it refused something (the CSP, the sandbox) is the defence working."""
    return "Content Security Policy" in text or "sandboxed" in text or text.startswith("Failed to load resource")


@pytest.fixture(scope="module")
def server(backend: str, workdir: Path) -> Iterator[LiveServer]:
    with app_on_empty_database(backend, workdir, "hostile", run_sync=True) as live:
        yield live


def _mail(to: str, n: int, html: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Mallory <mallory@attacker.example>", to, f"Vectors {n:03d}"
    message["Date"] = format_datetime(dt.datetime(2026, 10, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n))
    message.set_content(f"vector group {n}")
    message.add_alternative(html, subtype="html")
    return bytes(message)


def _conversation_urls(page: Page, base: str) -> list[str]:
    urls: list[str] = []
    number = 1
    while True:
        page.goto(f"{base}/inbox/inbox?page_number={number}")
        links = page.locator("[data-testid=conversation] a.conversation-link")
        urls += [base + href for href in links.evaluate_all("(els) => els.map((e) => e.getAttribute('href'))")]
        if page.get_by_test_id("page-next").count() == 0:
            return urls
        number += 1


def test_no_vector_runs_or_loads_anything_in_the_reading_pane(tab: Page, server, backend, dovecot, mailbox,
                                                               attacker, groups):
    for n, html in enumerate(groups):
        dovecot.deliver(mailbox.address, _mail(mailbox.address, n, html))
    base, page = server.url, tab
    set_up(page, base)
    page.goto(base + "/accounts/new")
    fill_account(page, mailbox, mailbox.password)
    page.get_by_test_id("field-sync_start").select_option("all")
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("sync-counts")).to_have_text(f"{len(groups)} of {len(groups)} messages",
                                                            timeout=60_000)

    urls = _conversation_urls(page, base)
    assert len(urls) == len(groups)
    watch = Watch()
    # Our own page and the message documents may load; nothing else, from anywhere.
    watch.attach(page, re.compile(re.escape(base) + r"/(inbox/|messages/[0-9a-f-]+/body$|static/)"))
    for url in urls:
        with page.expect_response(re.compile(r"/messages/[0-9a-f-]+/body$")):
            _visit(page, url)
    screenshot(page, "hostile-message", backend)

    assert watch.dialogs == [] and watch.popups == [] and watch.console == []
    assert watch.requests == []
    assert _Attacker.hits == []


def test_the_harness_catches_the_same_vectors_without_sanitising_or_sandbox(tab: Page, attacker, groups):
    """The control run: the very same watch over the raw vectors served as plain pages."""
    _Attacker.hits.clear()
    _Attacker.pages = {f"/control/{n}": f"<!doctype html><html><body>{html}</body></html>".encode()
                       for n, html in enumerate(groups)}
    watch = Watch()
    watch.attach(tab, re.compile(re.escape(attacker) + r"/control/"))
    for n in range(len(groups)):
        _visit(tab, f"{attacker}/control/{n}")

    assert len(watch.dialogs) >= 20, watch.dialogs
    assert len(_Attacker.hits) >= 20
