"""Secrets at rest: MultiFernet (AES-128-CBC + HMAC-SHA256), keys newest first.

Keys come from ``SALESINBOX_SECRET_KEYS``; embedded installs without it get a
key file under the data dir, created once with mode 0600. Rotation: put a new
key first, then ``salesinbox keys rotate`` re-encrypts every stored secret with
it; older keys only decrypt and can be dropped afterwards.

Signatures (``sign``/``verify``, e.g. the image proxy's URLs) are HMAC-SHA256
under a key derived from each Fernet key with HKDF (RFC 5869), so the
encryption key itself never signs anything. The newest key signs; any
configured key verifies, so links made before a rotation keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SIGNING_INFO = b"salesinbox signing key v1"


class SecretKeyError(Exception):
    pass


class FernetSecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except ValueError as exc:
            raise SecretKeyError("a secret key is not a valid Fernet key") from exc
        self._signing_keys = [_signing_key(k) for k in keys]

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError("a stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()

    def sign(self, data: bytes) -> str:
        """URL-safe base64 (unpadded) of HMAC-SHA256(``data``) under the newest key's signing key."""
        return _mac(self._signing_keys[0], data)

    def verify(self, data: bytes, signature: str) -> bool:
        if not signature.isascii():
            return False
        given = signature.encode()
        return any(hmac.compare_digest(_mac(key, data).encode(), given) for key in self._signing_keys)


def _signing_key(key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SIGNING_INFO)
    return hkdf.derive(base64.urlsafe_b64decode(key.encode()))


def _mac(key: bytes, data: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, data, hashlib.sha256).digest()).rstrip(b"=").decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(value: str) -> list[str]:
    """Keys separated by commas (the setting) or newlines (the key file)."""
    return [k for k in value.replace(",", " ").split() if k]


def load_or_create_key_file(path: Path) -> list[str]:
    if path.exists():
        return parse_keys(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    return parse_keys(path.read_text())


def write_key_file(path: Path, keys: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
    os.replace(tmp, path)
