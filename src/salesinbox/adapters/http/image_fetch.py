"""Fetch a remote image for the image proxy, without letting an email reach inside our network.

A sender controls every URL in an email, so each one is treated as an attack on
the server that fetches it (SSRF). The walk, per hop:

1. Parse: only ``http``/``https``, no userinfo, a host present.
2. Resolve: an IP literal is used as is, including the legacy forms the C
   resolver accepts (``2130706433``, ``0x7f.1``, ``017700000001``); a name is
   resolved here, once, under the deadline.
3. Verify: EVERY address must be globally routable (``is_public_address``):
   no loopback, private, link-local (cloud metadata at 169.254.169.254),
   CGNAT, multicast, reserved or unspecified addresses, and no IPv6 form
   that embeds one (IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``).
4. Connect to the verified IP itself, never the name again, so a second DNS
   answer cannot swap in an internal address (DNS rebinding). The original
   ``Host`` header goes along, and for https the name is the TLS SNI and the
   name the certificate is checked against.
5. A redirect (301/302/303/307/308) starts the walk again for its target, at
   most ``max_redirects`` times.

The final answer must be a 200 with an ``image/*`` type other than SVG (which
can carry script), no content coding, and at most ``max_bytes`` of body, read
as a stream and cut off at the limit. One deadline covers the whole fetch:
DNS, every hop and the body.

Nothing of the user's goes out: no cookies (nothing is kept between requests),
no auth headers, no proxy or ``.netrc`` from the environment, and a fixed
User-Agent. Connections are never reused: a pooled TLS connection verified
for one name must not carry a request for another name on the same IP.

The route that serves the bytes should still send ``X-Content-Type-Options:
nosniff`` and a restrictive ``Content-Security-Policy``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import httpx

USER_AGENT = "salesinbox-image-proxy"

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve ``(host, port)`` to IP address strings, like getaddrinfo."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# A media type as it may be echoed back to the browser: no parameters, no odd characters.
_IMAGE_TYPE = re.compile(r"image/[a-z0-9][a-z0-9!#$&^_.+-]*")
# The characters of the IPv4 spellings inet_aton accepts (octal, hex, fewer than 4 parts).
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Python's ipaddress flags most of these; they are listed again so a change in
# its tables between versions cannot open one up.
_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and broadcast
        "::/8",  # unspecified, loopback, IPv4-compatible, NAT64 (judged by what it embeds)
        "100::/64",  # discard
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/23",  # IETF protocol assignments (Teredo, ...)
        "2001:db8::/32",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local
        "ff00::/8",  # multicast
    )
)


class ImageRefused(Exception):
    """The image was not fetched; ``reason`` says why, as a short machine code.

    Codes: ``url`` (malformed, or userinfo in it), ``scheme``, ``address``
    (not globally routable), ``redirects``, ``status``, ``type``, ``size``,
    ``timeout``, ``dns``, ``connect``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchedImage:
    """The image's bytes and its bare media type (``image/png``, no parameters)."""

    content: bytes
    content_type: str


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver, addresses in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """Whether ``address`` is globally routable, judging an IPv6 form by the IPv4 address it embeds."""
    try:
        ip = _normalised(ipaddress.ip_address(address))
    except ValueError:
        return False
    return all(_is_public(candidate) for candidate in _judged(ip))


def _normalised(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it means; any other address unchanged."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _judged(ip: IPAddress) -> list[IPAddress]:
    """The addresses that decide whether ``ip`` is public: what NAT64 and 6to4 forms lead to."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
        if ip.sixtofour is not None:
            return [ip, ip.sixtofour]
    return [ip]


def _is_public(ip: IPAddress) -> bool:
    """Whether one address (no embedded forms) is globally routable."""
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ):
        return False
    return not any(ip in net for net in _BLOCKED if net.version == ip.version)


def _ip_literal(host: str) -> IPAddress | None:
    """The address a URL host spells, including legacy IPv4 spellings; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _parse(url: str | httpx.URL) -> httpx.URL:
    """Parse and check one hop's URL: http(s), a host, no userinfo."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ImageRefused("url") from None
    if parsed.scheme not in _SCHEMES:
        raise ImageRefused("scheme")
    if parsed.userinfo or not parsed.host:
        raise ImageRefused("url")
    return parsed


def _media_type(header: str) -> str:
    """``Content-Type`` without parameters, lower-cased."""
    return header.split(";", 1)[0].strip().lower()


class ImageFetcher:
    """Fetches remote images for the image proxy; see the module docstring for the rules.

    ``allow_networks`` (CIDR strings) exempts addresses from the public-address
    rule. It exists for the tests' local servers; the product passes nothing
    here, except from an explicit setting for on-premises mail servers whose
    images live on the local network. ``resolve`` replaces the system resolver
    (tests), and ``ssl_context`` the default certifi-based verification (tests,
    or an on-premises CA).
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 3,
        allow_networks: Sequence[str] = (),
        resolve: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._allowed: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(net) for net in allow_networks)
        self._resolve: Resolver = resolve or system_resolve
        # No keep-alive: each connection serves one request, see the module docstring.
        self._transport = httpx.AsyncHTTPTransport(
            verify=ssl_context if ssl_context is not None else True,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
            retries=0,
        )

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.aclose()

    async def fetch(self, url: str) -> FetchedImage:
        """Fetch the image at ``url``, or raise ``ImageRefused``."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._fetch(url)
        except TimeoutError:
            raise ImageRefused("timeout") from None

    async def _fetch(self, url: str) -> FetchedImage:
        current = _parse(url)
        redirects = 0
        while True:
            addresses = await self._verified_addresses(current)
            response = await self._send(current, addresses)
            try:
                if response.status_code not in _REDIRECTS:
                    return await self._read_image(response)
                location = response.headers.get("location")
                if not location:
                    raise ImageRefused("status")
                redirects += 1
                if redirects > self._max_redirects:
                    raise ImageRefused("redirects")
                try:
                    target = current.join(location)
                except httpx.InvalidURL:
                    raise ImageRefused("url") from None
                current = _parse(target)
            finally:
                await response.aclose()

    async def _verified_addresses(self, url: httpx.URL) -> list[str]:
        """The addresses to connect to for ``url``'s host, refused unless every one is allowed."""
        literal = _ip_literal(url.host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            port = url.port or _DEFAULT_PORTS[url.scheme]
            try:
                found = await self._resolve(url.raw_host.decode("ascii"), port)
                addresses = [ipaddress.ip_address(address) for address in found]
            except (OSError, UnicodeError, ValueError):
                raise ImageRefused("dns") from None
            if not addresses:
                raise ImageRefused("dns")
        normalised = [_normalised(ip) for ip in addresses]
        if not all(self._allowed_address(ip) for ip in normalised):
            raise ImageRefused("address")
        return [str(ip) for ip in normalised]

    def _allowed_address(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self._allowed if net.version == ip.version):
            return True
        return all(_is_public(candidate) for candidate in _judged(ip))

    async def _send(self, url: httpx.URL, addresses: list[str]) -> httpx.Response:
        """Send the GET to the first verified address that accepts a connection."""
        headers = {
            "Host": url.netloc.decode("ascii"),
            "User-Agent": USER_AGENT,
            "Accept": "image/*",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }
        extensions: dict[str, object] = {
            "timeout": {"connect": self._timeout, "read": self._timeout, "write": self._timeout, "pool": self._timeout}
        }
        if url.scheme == "https" and _ip_literal(url.host) is None:
            extensions["sni_hostname"] = url.raw_host.decode("ascii")
        failure: Exception | None = None
        for address in addresses:
            request = httpx.Request("GET", url.copy_with(host=address), headers=headers, extensions=extensions)
            try:
                return await self._transport.handle_async_request(request)
            except httpx.TimeoutException:
                raise ImageRefused("timeout") from None
            except httpx.ConnectError as exc:
                failure = exc
            except httpx.TransportError:
                raise ImageRefused("connect") from None
        raise ImageRefused("connect") from failure

    async def _read_image(self, response: httpx.Response) -> FetchedImage:
        """Check a final response and read its body, up to ``max_bytes``."""
        if response.status_code != 200:
            raise ImageRefused("status")
        content_type = _media_type(response.headers.get("content-type", ""))
        if not _IMAGE_TYPE.fullmatch(content_type) or "svg" in content_type:
            raise ImageRefused("type")
        if response.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
            raise ImageRefused("type")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise ImageRefused("size")
        body = bytearray()
        try:
            async for chunk in response.aiter_raw(_CHUNK):
                body += chunk
                if len(body) > self._max_bytes:
                    raise ImageRefused("size")
        except httpx.TimeoutException:
            raise ImageRefused("timeout") from None
        except httpx.TransportError:
            raise ImageRefused("connect") from None
        return FetchedImage(bytes(body), content_type)
