"""What the server shows the CA to prove it controls a domain.

**HTTP-01** (RFC 8555 8.3): the CA fetches ``http://<domain>/.well-known/acme-challenge/<token>``
on port 80 and expects the key authorization as the body. The answer is kept in the store
(``Store.put_acme_challenge``), not in memory: every HTTP listener answers the path, and with
several worker processes or nodes the one that ordered is not always the one the CA reaches.
A token is base64url (8.1), so a path that is anything else names no challenge.

**TLS-ALPN-01** (RFC 8737): the CA connects to port 443 with SNI = the domain and ALPN
``acme-tls/1`` only, and expects a self-signed certificate for that one name carrying the
critical ``id-pe-acmeIdentifier`` extension (1.3.6.1.5.5.7.1.31) whose value is the DER
OCTET STRING of SHA-256(key authorization). The certificate store hands that certificate to
such handshakes (``CertificateStore.set_alpn_challenge``); normal clients never see it.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from stalwart_py.acme.jws import alpn_digest
from stalwart_py.store.base_shared_state import ACME_CHALLENGE_LIFETIME

if TYPE_CHECKING:
    from stalwart_py.store import Store

log = logging.getLogger("stalwart_py.acme")

HTTP01_PATH = "/.well-known/acme-challenge/"
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 6.1
ALPN_PROTOCOL = "acme-tls/1"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
HTTP_01 = "http-01"  # the store's kind of these challenges


async def http01_answer(store: Store, token: str) -> bytes | None:
    """The body to serve for ``/.well-known/acme-challenge/<token>``, or None (404)."""
    if not _TOKEN.fullmatch(token):
        return None
    return await store.acme_challenge(HTTP_01, token, time.time() - ACME_CHALLENGE_LIFETIME)


async def publish_http01(store: Store, token: str, key_authorization: str) -> None:
    """Serve ``key_authorization`` at the token's path (from every process and node)."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"the CA sent a token that is not base64url: {token!r}")
    await store.put_acme_challenge(HTTP_01, token, key_authorization.encode("ascii"))


async def withdraw_http01(store: Store, token: str) -> None:
    if _TOKEN.fullmatch(token):
        await store.delete_acme_challenge(HTTP_01, token)


def alpn_certificate(domain: str, key_authorization: str) -> tuple[bytes, bytes]:
    """The TLS-ALPN-01 certificate and key (PEM) for ``domain`` (RFC 8737 3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    # DER OCTET STRING of the 32-byte digest: tag 0x04, length 0x20
    value = b"\x04\x20" + alpn_digest(key_authorization)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, value), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem
