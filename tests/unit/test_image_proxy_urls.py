"""Signed image proxy URLs: only a URL this server signed passes, under any configured key."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

from salesinbox.adapters.secrets import FernetSecretBox, generate_key
from salesinbox.services.image_proxy import proxy_url

URL = "https://cdn.customer.example/logo.png?utm=a&b=ä"


def query_of(path: str) -> dict[str, str]:
    parts = urlsplit(path)
    assert parts.path == "/proxy/image"
    return {key: values[0] for key, values in parse_qs(parts.query, strict_parsing=True).items()}


def test_the_proxy_url_carries_the_exact_url_and_its_signature():
    box = FernetSecretBox([generate_key()])

    query = query_of(proxy_url(box, URL))

    assert query["url"] == URL
    assert box.verify(b"salesinbox image proxy\x00" + URL.encode(), query["sig"])


def test_a_signature_is_for_one_url_one_purpose_and_one_installation():
    box, other = FernetSecretBox([generate_key()]), FernetSecretBox([generate_key()])
    sig = query_of(proxy_url(box, URL))["sig"]

    assert not box.verify(b"salesinbox image proxy\x00" + URL.encode() + b"x", sig)
    assert not box.verify(URL.encode(), sig)  # a signature made for the proxy means nothing elsewhere
    assert not other.verify(b"salesinbox image proxy\x00" + URL.encode(), sig)
    assert not box.verify(b"anything", "ünïcode")


def test_signatures_made_before_a_key_rotation_still_verify():
    old = generate_key()
    before = FernetSecretBox([old])
    after = FernetSecretBox([generate_key(), old])
    sig = before.sign(b"data")

    assert after.verify(b"data", sig)
    assert after.sign(b"data") != sig  # the newest key signs


def test_the_signing_key_is_derived_not_the_secret_key_itself():
    key = generate_key()
    box = FernetSecretBox([key])
    with_raw_key = hmac.new(base64.urlsafe_b64decode(key), b"data", hashlib.sha256).digest()

    signature = box.sign(b"data")

    assert len(signature) == 43  # unpadded URL-safe base64 of an HMAC-SHA256
    assert signature != base64.urlsafe_b64encode(with_raw_key).rstrip(b"=").decode()
