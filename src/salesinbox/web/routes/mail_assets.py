"""What a message brings along: its attachments, and its remote images through the proxy.

    GET /attachments/{attachment_id}      an attachment's bytes, always as a download
    GET /proxy/image?url=...&sig=...      a remote image, fetched by the server (signed URLs only)

Both serve bytes a stranger wrote, from our origin. So neither may ever be
run as a document of ours: ``X-Content-Type-Options: nosniff``, a CSP with
``sandbox`` and ``default-src 'none'`` (a document opened anyway gets a unique
origin, no script, no loads), and an attachment's HTML, SVG, XML or script
types are served as ``application/octet-stream``.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from urllib.parse import quote

from litestar import Response, Router, get
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_502_BAD_GATEWAY

from salesinbox.services import image_proxy, mail_assets
from salesinbox.services.image_proxy import ImageUnavailable
from salesinbox.services.mail_assets import AttachmentUnavailable
from salesinbox.web.auth import logged_in
from salesinbox.web.errors import error_page
from salesinbox.web.i18n import error_message
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes.pages_accounts import plan_gate

OCTET_STREAM = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
# Types a browser may run as a document, or as script or style of one.
_ACTIVE = re.compile(r"html|xml|svg|javascript|ecmascript|jscript|css|xsl|x-mixed-replace|wasm")
_FALLBACK_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\%;]')
# RFC 8187 attr-char, besides letters and digits
_ATTR_CHARS = "!#$&+-.^_`|~"

ATTACHMENT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=86400",
}


def served_type(content_type: str) -> str:
    """The Content-Type an attachment is served with: its own, unless a browser could run it."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media) or _ACTIVE.search(media):
        return OCTET_STREAM
    return media


def content_disposition(filename: str) -> str:
    """``attachment`` with the name twice (RFC 6266): an ASCII ``filename`` and the UTF-8 ``filename*`` (RFC 8187)."""
    name = filename.strip() or "attachment"
    return f"attachment; filename=\"{_ascii_fallback(name)}\"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"


def _ascii_fallback(name: str) -> str:
    """``name`` for clients without RFC 8187: accents dropped (é -> e), any other unsafe character an underscore."""
    folded = "".join(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "_" for ch in name)
    return _FALLBACK_UNSAFE.sub("_", folded)


@get("/attachments/{attachment_id:uuid}", name="attachment_download", before_request=plan_gate)
async def attachment_download(
    deps: UseCases, actor: CurrentActor, attachment_id: FromPath[uuid.UUID]
) -> Response:
    try:
        found = await mail_assets.open_attachment(deps, actor, attachment_id)
    except AttachmentUnavailable as exc:
        return error_page(HTTP_502_BAD_GATEWAY, error_message(exc))
    return Response(
        found.content,
        media_type=served_type(found.content_type),
        headers={**ATTACHMENT_HEADERS, "Content-Disposition": content_disposition(found.filename)},
    )


@get("/proxy/image", name="image_proxy")
async def proxied_image(
    deps: UseCases, actor: CurrentActor, url: FromQuery[str] = "", sig: FromQuery[str] = ""
) -> Response:
    try:
        image = await image_proxy.fetch_image(deps, actor, url, sig)
    except ImageUnavailable as exc:
        return Response(
            str(exc),
            status_code=HTTP_502_BAD_GATEWAY,
            media_type="text/plain; charset=utf-8",
            headers={**IMAGE_HEADERS, "Cache-Control": "no-store"},
        )
    return Response(image.content, media_type=image.content_type, headers=IMAGE_HEADERS)


ROUTES = [
    Router(
        "/",
        route_handlers=[attachment_download, proxied_image],
        guards=[logged_in],
        include_in_schema=False,
    )
]
