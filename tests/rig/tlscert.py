"""A self-signed certificate for the test rig's TLS listeners.

The certificate is its own CA: a client that loads ``cert.pem`` as its trust
anchor (``ssl.create_default_context(cafile=...)``) accepts the server, and a
client using the system trust store refuses it, which is exactly what the
"untrusted certificate" tests need.

It names ``localhost`` and ``127.0.0.1`` in subjectAltName because Python's
``ssl`` module checks the SAN only (the CN is ignored since 3.7) and the rig
listens on 127.0.0.1. The key is P-256 rather than RSA: generating it is
instant, and Dovecot and OpenSSL accept ECDSA certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    """Paths of a PEM certificate (also the CA to trust) and its private key."""

    cert_path: Path
    key_path: Path


def write_self_signed_cert(directory: Path, *, days: int = 2) -> CertFiles:
    """Write ``cert.pem`` and ``key.pem`` (mode 0600) into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build_cert(key, days)
    files = CertFiles(directory / "cert.pem", directory / "key.pem")
    files.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(_key_pem(key))
    os.chmod(files.key_path, 0o600)
    return files


def _build_cert(key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    # Backdated by a minute so a client whose clock is slightly behind still
    # sees a valid certificate.
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_subject_alt_names(), critical=False)
        # CA:TRUE lets OpenSSL accept the certificate as its own trust anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Key identifiers and usages: Python 3.13+ verifies with
        # VERIFY_X509_STRICT, which refuses certificates without them.
        .add_extension(_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _subject_alt_names() -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        ]
    )


def _key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
