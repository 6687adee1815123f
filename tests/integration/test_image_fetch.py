"""The image proxy's fetcher against real local HTTP(S) servers.

The servers listen on 127.0.0.1, which the fetcher refuses by default; tests
that need an answer pass ``allow_networks=["127.0.0.1/32"]``. Names that must
not resolve for real (``*.test``) go through an injected resolver, which also
shows that the fetcher connects to the address it verified, never re-resolving.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from salesinbox.adapters.http.image_fetch import (
    USER_AGENT,
    FetchedImage,
    ImageFetcher,
    ImageRefused,
    is_public_address,
)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
LIMIT = 64 * 1024
LOCAL = ["127.0.0.1/32"]
PUBLIC = "93.184.215.14"


# -- a tiny HTTP server -------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server read it."""

    path: str
    headers: dict[str, str]


@dataclass
class ImageServer:
    """An HTTP/1.1 server on 127.0.0.1 with canned routes; counts connections and requests."""

    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            self.requests.append(Seen(path, headers))
            await self._respond(path, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _respond(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if path == "/hang":
            await reader.read()  # until the client gives up and hangs up
            return
        if path == "/img.png":
            return await _send(writer, 200, {"Content-Type": "image/png"}, PNG)
        if path == "/img-params":
            return await _send(writer, 200, {"Content-Type": "Image/PNG; charset=binary"}, PNG)
        if path == "/img.svg":
            return await _send(writer, 200, {"Content-Type": "image/svg+xml"}, SVG)
        if path == "/page":
            return await _send(writer, 200, {"Content-Type": "text/html"}, b"<p>hi</p>")
        if path == "/untyped":
            return await _send(writer, 200, {}, PNG)
        if path == "/gzip":
            return await _send(writer, 200, {"Content-Type": "image/png", "Content-Encoding": "gzip"}, PNG)
        if path == "/missing":
            return await _send(writer, 404, {"Content-Type": "image/png"}, PNG)
        if path == "/big-declared":
            return await _send(writer, 200, {"Content-Type": "image/png", "Content-Length": str(LIMIT * 100)}, PNG)
        if path == "/exact":
            return await _send(writer, 200, {"Content-Type": "image/png"}, b"x" * LIMIT)
        if path == "/big-streamed":
            # No Content-Length: the body ends when the connection closes, so only counting stops it.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
            for _ in range(64):
                writer.write(b"x" * 16384)
                await writer.drain()
            return
        if path.startswith("/chain/"):
            left = int(path.removeprefix("/chain/"))
            if left == 0:
                return await _send(writer, 200, {"Content-Type": "image/png"}, PNG)
            return await _redirect(writer, f"/chain/{left - 1}")
        if path == "/set-cookie":
            return await _send(writer, 302, {"Location": "/img.png", "Set-Cookie": "sid=secret; Path=/"}, b"")
        if path == "/redirect-no-location":
            return await _send(writer, 302, {}, b"")
        if path.startswith("/to?"):
            return await _redirect(writer, path.removeprefix("/to?"))
        return await _send(writer, 404, {}, b"")


async def _send(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes) -> None:
    lines = [f"HTTP/1.1 {status} X", "Connection: close"]
    if not any(name.lower() == "content-length" for name in headers):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _redirect(writer: asyncio.StreamWriter, location: str) -> None:
    await _send(writer, 302, {"Location": location}, b"")


@contextlib.asynccontextmanager
async def _running(tls: ssl.SSLContext | None = None) -> AsyncIterator[ImageServer]:
    server = ImageServer(tls=tls)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def server() -> AsyncIterator[ImageServer]:
    async with _running() as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[ImageFetcher]:
    """The fetcher as the product builds it: nothing allowed but public addresses."""
    async with ImageFetcher(timeout=2.0) as built:
        yield built


@pytest.fixture
async def local() -> AsyncIterator[ImageFetcher]:
    """A fetcher that may reach the local test server."""
    async with ImageFetcher(timeout=2.0, max_bytes=LIMIT, allow_networks=LOCAL) as built:
        yield built


def resolver(
    answers: dict[str, list[str]], calls: list[str] | None = None
) -> Callable[[str, int], Awaitable[list[str]]]:
    """A resolver with fixed answers; a name it does not know fails like getaddrinfo."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


async def refused(fetcher: ImageFetcher, url: str) -> str:
    with pytest.raises(ImageRefused) as caught:
        await fetcher.fetch(url)
    return caught.value.reason


# -- internal addresses are refused before any connection ----------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.0.0.1",
        "0x7f.1",
        "017700000001",  # octal
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:ffff:127.0.0.1]",
        "0.0.0.0",
        "0",
        "[::]",
    ],
)
async def test_loopback_is_refused_without_connecting(fetcher: ImageFetcher, server: ImageServer, host: str) -> None:
    assert await refused(fetcher, server.url("/img.png", host)) == "address"
    assert server.connections == 0


async def test_a_dotted_quad_with_octal_parts_is_refused(fetcher: ImageFetcher, server: ImageServer) -> None:
    """httpx will not parse ``0177.0.0.1`` (octal 127): refused as a malformed URL, never connected."""
    assert await refused(fetcher, server.url("/img.png", "0177.0.0.1")) == "url"
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://172.16.5.4/x.png",
        "http://192.168.1.1/x.png",
        "http://100.64.0.1/x.png",
        "http://224.0.0.1/x.png",
        "http://240.0.0.1/x.png",
        "http://255.255.255.255/x.png",
        "http://0.1.2.3/x.png",
        "http://[fe80::1]/x.png",
        "http://[fe80::1%25eth0]/x.png",
        "http://[fc00::1]/x.png",
        "http://[ff02::1]/x.png",
        "http://[::ffff:169.254.169.254]/x.png",
        "http://[::ffff:10.0.0.1]/x.png",
        "http://[64:ff9b::a9fe:a9fe]/x.png",  # NAT64 of 169.254.169.254
        "http://[64:ff9b::7f00:1]/x.png",  # NAT64 of 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/x.png",  # 6to4 of 169.254.169.254
        "http://[2002:7f00:1::1]/x.png",  # 6to4 of 127.0.0.1
        "http://[::7f00:1]/x.png",  # IPv4-compatible 127.0.0.1
        "https://169.254.169.254/",
        "http://0xa9.0xfe.0xa9.0xfe/",  # 169.254.169.254 in hex
        "http://2852039166/",  # 169.254.169.254 as one number
    ],
)
async def test_internal_addresses_are_refused(fetcher: ImageFetcher, url: str) -> None:
    # A connection attempt could only end in "timeout" or "connect": "address" means none was made.
    assert await refused(fetcher, url) == "address"


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "10.0.0.1",
        "127.0.0.1",
        "::1",
        "fe80::1",
        "::ffff:192.168.0.1",
        "64:ff9b::a00:1",
        "100.64.1.1",
    ],
)
async def test_a_name_resolving_to_an_internal_address_is_refused(address: str) -> None:
    async with ImageFetcher(resolve=resolver({"evil.test": [address]})) as fetcher:
        assert await refused(fetcher, "http://evil.test/x.png") == "address"


async def test_one_internal_address_among_public_ones_is_refused(server: ImageServer) -> None:
    """Every resolved address must be public, not just the first: the connection may use any."""
    answers = {"mixed.test": [PUBLIC, "127.0.0.1"]}
    async with ImageFetcher(resolve=resolver(answers)) as fetcher:
        assert await refused(fetcher, server.url("/img.png", "mixed.test")) == "address"
    assert server.connections == 0


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "100.127.255.255",
        "224.0.0.251",
        "::",
        "fd12:3456::1",
        "2001:db8::1",
        "2001::1",
        "64:ff9b:1::a",
        "not an address",
    ],
)
def test_internal_addresses_fail(address: str) -> None:
    assert not is_public_address(address)


# -- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://127.0.0.1:6379/_INFO",
        "//example.com/x.png",
        "x.png",
    ],
)
async def test_only_http_and_https(local: ImageFetcher, url: str) -> None:
    assert await refused(local, url) == "scheme"


async def test_userinfo_is_refused(local: ImageFetcher, server: ImageServer) -> None:
    assert await refused(local, f"http://user:pass@127.0.0.1:{server.port}/img.png") == "url"
    assert await refused(local, f"http://127.0.0.1:{server.port}\\@example.com/img.png") == "url"
    assert server.connections == 0


async def test_unresolvable_name(server: ImageServer) -> None:
    async with ImageFetcher(resolve=resolver({})) as fetcher:
        assert await refused(fetcher, server.url("/img.png", "nowhere.test")) == "dns"
    async with ImageFetcher(resolve=resolver({"empty.test": []})) as fetcher:
        assert await refused(fetcher, server.url("/img.png", "empty.test")) == "dns"


# -- answers from an allowed server -----------------------------------------------------


async def test_a_png_is_fetched(local: ImageFetcher, server: ImageServer) -> None:
    assert await local.fetch(server.url("/img.png")) == FetchedImage(PNG, "image/png")


async def test_the_content_type_is_returned_bare(local: ImageFetcher, server: ImageServer) -> None:
    assert (await local.fetch(server.url("/img-params"))).content_type == "image/png"


async def test_nothing_of_the_user_is_sent(local: ImageFetcher, server: ImageServer) -> None:
    """A fixed User-Agent, no cookies (not even one the server just set), no credentials."""
    await local.fetch(server.url("/set-cookie"))
    await local.fetch(server.url("/img.png"))
    assert [seen.path for seen in server.requests] == ["/set-cookie", "/img.png", "/img.png"]
    for seen in server.requests:
        assert seen.headers["user-agent"] == USER_AGENT
        assert seen.headers["host"] == f"127.0.0.1:{server.port}"
        assert "cookie" not in seen.headers
        assert "authorization" not in seen.headers
        assert "proxy-authorization" not in seen.headers


@pytest.mark.parametrize("path", ["/img.svg", "/page", "/untyped", "/gzip"])
async def test_anything_but_a_plain_raster_image_is_refused(
    local: ImageFetcher, server: ImageServer, path: str
) -> None:
    assert await refused(local, server.url(path)) == "type"


@pytest.mark.parametrize("path", ["/missing", "/redirect-no-location"])
async def test_anything_but_200_is_refused(local: ImageFetcher, server: ImageServer, path: str) -> None:
    assert await refused(local, server.url(path)) == "status"


async def test_a_body_over_the_limit_is_refused(local: ImageFetcher, server: ImageServer) -> None:
    assert await refused(local, server.url("/big-declared")) == "size"
    assert await refused(local, server.url("/big-streamed")) == "size"


async def test_a_body_at_the_limit_is_fetched(local: ImageFetcher, server: ImageServer) -> None:
    assert len((await local.fetch(server.url("/exact"))).content) == LIMIT


async def test_a_server_that_never_answers_times_out(server: ImageServer) -> None:
    async with ImageFetcher(timeout=0.5, allow_networks=LOCAL) as fetcher:
        started = time.monotonic()
        assert await refused(fetcher, server.url("/hang")) == "timeout"
        assert time.monotonic() - started < 10  # the timeout ended it: neither would ever answer


async def test_a_resolver_that_never_answers_times_out() -> None:
    async def stuck(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    async with ImageFetcher(timeout=0.3, resolve=stuck) as fetcher:
        started = time.monotonic()
        assert await refused(fetcher, "http://slow.test/x.png") == "timeout"
        assert time.monotonic() - started < 10  # the timeout ended it: neither would ever answer


async def test_a_closed_port_is_a_connect_failure(local: ImageFetcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await refused(local, f"http://127.0.0.1:{port}/img.png") == "connect"


# -- redirects -------------------------------------------------------------------------


async def test_a_redirect_to_an_allowed_path_is_followed(local: ImageFetcher, server: ImageServer) -> None:
    assert (await local.fetch(server.url("/to?/img.png"))).content == PNG
    assert (await local.fetch(server.url("/to?" + server.url("/img.png")))).content == PNG


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused(
    local: ImageFetcher, server: ImageServer, target: str
) -> None:
    assert await refused(local, server.url("/to?" + target)) == "address"


async def test_a_redirect_to_a_name_is_checked_like_the_first_hop(server: ImageServer) -> None:
    answers = {"metadata.test": ["169.254.169.254"]}
    async with ImageFetcher(allow_networks=LOCAL, resolve=resolver(answers)) as fetcher:
        assert await refused(fetcher, server.url("/to?http://metadata.test/")) == "address"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "javascript:alert(1)", "ftp://example.com/x"])
async def test_a_redirect_to_another_scheme_is_refused(local: ImageFetcher, server: ImageServer, target: str) -> None:
    assert await refused(local, server.url("/to?" + target)) == "scheme"


async def test_three_redirects_are_followed(local: ImageFetcher, server: ImageServer) -> None:
    assert (await local.fetch(server.url("/chain/3"))).content == PNG


async def test_a_fourth_redirect_is_refused(local: ImageFetcher, server: ImageServer) -> None:
    assert await refused(local, server.url("/chain/4")) == "redirects"
    assert [seen.path for seen in server.requests] == ["/chain/4", "/chain/3", "/chain/2", "/chain/1"]


# -- DNS rebinding: the connection goes to the address that was verified ------------------


async def test_the_verified_address_is_used_not_resolved_again(server: ImageServer) -> None:
    """``images.test`` exists only in the injected resolver, asked once: had the transport resolved
    the name itself, the request could not have reached the server."""
    calls: list[str] = []
    answers = {"images.test": ["127.0.0.1"]}
    async with ImageFetcher(allow_networks=LOCAL, resolve=resolver(answers, calls)) as fetcher:
        assert (await fetcher.fetch(server.url("/img.png", "images.test"))).content == PNG
    assert calls == ["images.test"]
    assert server.requests[0].headers["host"] == f"images.test:{server.port}"


async def test_a_rebinding_name_cannot_switch_to_an_internal_address(server: ImageServer) -> None:
    """A name that answers with a public address, then (on the redirect's lookup) with an internal one."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    async with ImageFetcher(allow_networks=LOCAL, resolve=rebinding) as fetcher:
        url = server.url("/to?" + server.url("/img.png", "rebind.test"), "rebind.test")
        assert await refused(fetcher, url) == "address"
    assert calls == ["rebind.test", "rebind.test"]
    assert [seen.path for seen in server.requests] == ["/to?" + server.url("/img.png", "rebind.test")]


# -- HTTPS: SNI and certificate checked against the name, connection to the verified IP ----


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for ``images.test`` only; the client trusts it and nothing else."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")])
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("image-tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return Tls(server=server, client=ssl.create_default_context(cafile=str(cert_path)))


async def test_https_sends_the_name_as_sni_and_host_to_the_verified_ip(tls: Tls) -> None:
    answers = {"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    async with (
        _running(tls.server) as server,
        ImageFetcher(allow_networks=LOCAL, resolve=resolver(answers), ssl_context=tls.client) as fetcher,
    ):
        assert (await fetcher.fetch(server.url("/img.png", "images.test"))).content == PNG
        assert server.sni == ["images.test"]
        assert server.requests[0].headers["host"] == f"images.test:{server.port}"
        # Same IP, other name: the certificate is checked against the name, so this fails.
        assert await refused(fetcher, server.url("/img.png", "other.test")) == "connect"
        assert len(server.requests) == 1


async def test_https_to_an_ip_literal_checks_the_certificate_against_the_ip(tls: Tls) -> None:
    async with (
        _running(tls.server) as server,
        ImageFetcher(allow_networks=LOCAL, ssl_context=tls.client) as fetcher,
    ):
        assert await refused(fetcher, server.url("/img.png")) == "connect"
        assert server.requests == []


def test_allow_networks_must_be_cidr() -> None:
    with pytest.raises(ValueError):
        ImageFetcher(allow_networks=["not a network"])
