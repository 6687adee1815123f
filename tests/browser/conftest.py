"""Headless Chromium (Debian's) driven by Playwright, against the real app on a
fresh database per backend, so the first-run page can be exercised."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ARTIFACTS, make_settings
from tests.support.databases import ThrowawayDatabase
from tests.support.server import LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
SCREENSHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API runs an event loop of
    # its own in this thread, which must be gone before pytest-asyncio closes
    # the session loop that the async tests share.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def app_on_empty_database(backend: str, workdir: Path, name: str, *, run_sync: bool = False,
                          settings: dict | None = None) -> Iterator[LiveServer]:
    """The real app on a database of its own that nobody has set up yet (dropped afterwards).

    ``settings`` overrides fields of the app's settings (e.g. an OAuth client)."""
    db = ThrowawayDatabase(backend, workdir).create()
    data_dir = workdir / f"{name}-{backend}-{db.url.rsplit('_', 1)[-1][:12]}"
    data_dir.mkdir()
    app_settings = make_settings(db.url, data_dir).model_copy(update=settings or {})
    server = LiveServer(app_settings, run_sync=run_sync).start()
    try:
        yield server
    finally:
        server.stop()
        db.drop()


@pytest.fixture(scope="module")
def fresh_server(backend: str, workdir: Path) -> Iterator[LiveServer]:
    """The app on an empty database: nobody has set it up yet."""
    with app_on_empty_database(backend, workdir, "browser") as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if _is_script_error(msg) else None)
    yield tab
    context.close()
    assert not errors, f"the page logged errors: {errors}"


def _is_script_error(message) -> bool:
    # A 401 or 422 page answering a wrong password or a bad form is expected;
    # Chromium reports it on the console, but it is not a script error.
    return message.type == "error" and not message.text.startswith("Failed to load resource: the server responded")


def screenshot(page: Page, name: str, backend: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{backend}.png"), full_page=True)
