"""Attachments and proxied images over HTTP, against the real app, a real Dovecot and a local image server.

What matters here is how the bytes are served: a stranger wrote them and
they come from our origin, so they must never run as one of our documents.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest

from salesinbox.services import conversations, image_proxy
from salesinbox.settings import Settings
from salesinbox.web.routes.mail_assets import content_disposition, served_type
from tests.conftest import create_tenant
from tests.support.http import PageSession, logged_in_session
from tests.support.mailboxes import connect_mailbox, mail_with_attachments
from tests.support.server import LiveServer

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
HTML = b"<!doctype html><script>alert(document.cookie)</script><p>Quote</p>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
FILES = {
    "Angebot für Müller.pdf": ("application/pdf", PDF),
    "quote.html": ("text/html", HTML),
    "logo.svg": ("image/svg+xml", SVG),
}
SANDBOX = "sandbox; default-src 'none'"


# ---- a local image server ---------------------------------------------------------------------


class ImageServer:
    """An HTTP server on 127.0.0.1 that answers every GET with a PNG and counts the requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                server.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="image-server", daemon=True)

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def image_server() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


@pytest.fixture(scope="module")
def loopback_allowed_server(settings: Settings) -> Iterator[LiveServer]:
    """The app as configured with SALESINBOX_IMAGE_PROXY_ALLOW_NETWORKS=127.0.0.1/32."""
    allowing = Settings(data_dir=settings.data_dir, database_url=settings.database_url,
                        secret_keys=settings.secret_keys, image_proxy_allow_networks="127.0.0.1/32")
    server = LiveServer(allowing).start()
    yield server
    server.stop()


# ---- a synced message with attachments -------------------------------------------------------------


@pytest.fixture
async def attachments(deps, tenant, dovecot, mailbox) -> dict[str, uuid.UUID]:
    """Filename -> attachment id, of one synced message in the tenant admin's account."""
    dovecot.deliver(mailbox.address, mail_with_attachments(mailbox.address, FILES, "Files for you"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    [listed] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    conversation = await conversations.get_conversation(deps, tenant.admin, listed.id)
    return {a.filename: a.id for a in conversation.messages[0].attachments}


@pytest.fixture
async def browser(live_server, tenant) -> AsyncIterator[PageSession]:
    async with await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password) as session:
        yield session


# ---- attachments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("declared", "served"), [
    ("application/pdf", "application/pdf"), ("image/png", "image/png"), ("text/plain", "text/plain"),
    ("text/html", "application/octet-stream"), ("image/svg+xml", "application/octet-stream"),
    ("application/xhtml+xml", "application/octet-stream"), ("text/xml", "application/octet-stream"),
    ("text/javascript", "application/octet-stream"), ("application/javascript", "application/octet-stream"),
    ("text/css", "application/octet-stream"), ("multipart/x-mixed-replace", "application/octet-stream"),
    ("Text/HTML; charset=utf-8", "application/octet-stream"), ("nonsense", "application/octet-stream"),
    ("image/png\r\nSet-Cookie: x=1", "application/octet-stream"),
])
def test_a_type_a_browser_could_run_is_served_as_bytes(declared, served):
    assert served_type(declared) == served


@pytest.mark.parametrize(("name", "header"), [
    ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
    ("Umowa łódź.pdf", "attachment; filename=\"Umowa _odz.pdf\"; filename*=UTF-8''Umowa%20%C5%82%C3%B3d%C5%BA.pdf"),
    ("報告.pdf", "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.pdf"),
    ('a"b\\c;d%.txt', "attachment; filename=\"a_b_c_d_.txt\"; filename*=UTF-8''a%22b%5Cc%3Bd%25.txt"),
    ("", "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"),
])
def test_the_download_name_is_encoded_for_every_browser(name, header):
    assert content_disposition(name) == header


async def test_an_attachment_downloads_with_its_bytes_and_an_encoded_name(browser, attachments):
    response = await browser.get(f"/attachments/{attachments['Angebot für Müller.pdf']}")

    assert response.status_code == 200 and response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Angebot fur Muller.pdf\"; filename*=UTF-8''Angebot%20f%C3%BCr%20M%C3%BCller.pdf")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == SANDBOX
    assert response.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize("name", ["quote.html", "logo.svg"])
async def test_html_and_svg_attachments_are_never_served_as_documents(browser, attachments, name):
    response = await browser.get(f"/attachments/{attachments[name]}")

    assert response.status_code == 200 and response.content == FILES[name][1]
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith(f'attachment; filename="{name}"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == SANDBOX


async def test_another_company_and_a_stranger_cannot_download_it(deps, live_server, attachments):
    other = await create_tenant(deps, name="Other Ltd")
    async with await logged_in_session(live_server.url, other.admin_email, other.admin_password) as session:
        refused = await session.get(f"/attachments/{attachments['quote.html']}")
    async with httpx.AsyncClient(base_url=live_server.url) as anonymous:
        stranger = await anonymous.get(f"/attachments/{attachments['quote.html']}")

    assert refused.status_code == 404 and HTML not in refused.content
    assert stranger.status_code == 302 and stranger.headers["location"].startswith("/login")


async def test_a_company_without_email_sync_sees_the_plan_gate(deps, live_server):
    small = await create_tenant(deps, name="Small Ltd", plan="essential")
    async with await logged_in_session(live_server.url, small.admin_email, small.admin_password) as session:
        response = await session.get(f"/attachments/{uuid.uuid4()}")
    assert response.status_code == 402


# ---- the image proxy -----------------------------------------------------------------------------------------


async def test_a_signed_image_url_is_fetched_and_served_as_the_image(deps, tenant, image_server,
                                                                     loopback_allowed_server):
    url = f"{image_server.url}/pixel.png?campaign={uuid.uuid4().hex}"
    async with await logged_in_session(loopback_allowed_server.url, tenant.admin_email,
                                       tenant.admin_password) as session:
        response = await session.get(image_proxy.proxy_url(deps, url))

    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["cache-control"] == "private, max-age=86400"
    assert image_server.requests[-1] == url.removeprefix(image_server.url)


async def test_a_forged_signature_is_refused_and_nothing_is_fetched(image_server, loopback_allowed_server,
                                                                    tenant):
    url = f"{image_server.url}/forged.png"
    async with await logged_in_session(loopback_allowed_server.url, tenant.admin_email,
                                       tenant.admin_password) as session:
        forged = await session.get(f"/proxy/image?url={quote(url, safe='')}&sig=AAAA")
        unsigned = await session.get(f"/proxy/image?url={quote(url, safe='')}")

    assert (forged.status_code, unsigned.status_code) == (403, 403)
    assert "/forged.png" not in image_server.requests


async def test_a_loopback_image_is_refused_without_the_setting(deps, browser, image_server):
    url = f"{image_server.url}/internal.png"

    response = await browser.get(image_proxy.proxy_url(deps, url))

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/plain")
    assert "not on the public internet" in response.text
    assert "/internal.png" not in image_server.requests


async def test_the_proxy_needs_a_login(deps, live_server, image_server):
    async with httpx.AsyncClient(base_url=live_server.url) as anonymous:
        response = await anonymous.get(image_proxy.proxy_url(deps, f"{image_server.url}/anonymous.png"))
    assert response.status_code == 302 and response.headers["location"].startswith("/login")
    assert "/anonymous.png" not in image_server.requests
