"""The image proxy: remote images of an email, loaded through our server when a user asks to see them.

A browser that loaded an email's images itself would tell the sender that
(and when, and from where) the mail was read; through the proxy the sender
sees only our server. The server then fetches URLs an outsider wrote, so:

- it only fetches URLs it signed itself: ``proxy_url`` is called while
  rendering a message the user may see, and ``fetch_image`` refuses a URL
  whose signature does not match (``PermissionDenied``) — the proxy is not an
  open fetcher for anyone with a session;
- the fetch itself is SSRF-safe (``adapters.http.image_fetch``: public
  addresses only, no redirects into the network, images only, size and time
  limits), reached through the ``ImageSource`` port.

Signatures are HMAC-SHA256 under a key derived from the secret keys
(``SecretBox.sign``), over a purpose label and the URL: a signature made for
something else never passes here.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from salesinbox.adapters.http.image_fetch import FetchedImage, ImageRefused
from salesinbox.domain.errors import DomainError, PermissionDenied
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services.ports import SecretBox
from salesinbox.services.unit_of_work import Deps

__all__ = ["FetchedImage", "ImageUnavailable", "fetch_image", "proxy_url"]

PATH = "/proxy/image"
_PURPOSE = b"salesinbox image proxy\x00"
_REASONS = {
    "url": "its address is not a valid web address",
    "scheme": "only http and https addresses are loaded",
    "address": "its address is not on the public internet",
    "redirects": "it redirects too many times",
    "status": "the image server did not return it",
    "type": "it is not an image",
    "size": "it is too large",
    "timeout": "the image server took too long",
    "dns": "its server name does not resolve",
    "connect": "its server could not be reached",
    "disabled": "the image proxy is not configured",
}


class ImageUnavailable(DomainError):
    """The image was not fetched; ``reason`` is the fetcher's short code (see ``ImageRefused``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The image was not loaded: {_REASONS.get(reason, 'it could not be fetched')}.")
        self.reason = reason


def _signed(url: str) -> bytes:
    return _PURPOSE + url.encode("utf-8", "surrogatepass")


def proxy_url(deps_or_key: Deps | SecretBox, url: str) -> str:
    """The proxy path that loads ``url``: ``/proxy/image?url=...&sig=...``."""
    box = deps_or_key.secrets if isinstance(deps_or_key, Deps) else deps_or_key
    query = urlencode({"url": url, "sig": box.sign(_signed(url))}, quote_via=quote, encoding="utf-8",
                      errors="surrogatepass")
    return f"{PATH}?{query}"


async def fetch_image(deps: Deps, actor: Actor, url: str, sig: str) -> FetchedImage:
    """The image at ``url`` if ``sig`` is our signature of it; ``actor`` is who asks (a logged-in user)."""
    if not deps.secrets.verify(_signed(url), sig):
        raise PermissionDenied(Text("This image link was not made by this server."))
    if deps.images is None:
        raise ImageUnavailable("disabled")
    try:
        return await deps.images.fetch(url)
    except ImageRefused as exc:
        raise ImageUnavailable(exc.reason) from exc
