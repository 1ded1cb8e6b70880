"""Senders' DNS for the sender-authentication tests: a loopback zone server, the one resolver
pointed at it, and signing keys published in it (DKIM, ARC) the way a sending domain would."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from stalwart_py.resolver import Resolver
from tests.support.mail_peers import ZoneServer, txt_text

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class SigningKey:
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256" (what dkimpy signs with)
    private: bytes  # as dkimpy takes it: PKCS#1 PEM (RSA) or the base64 seed (Ed25519)
    record: str  # the TXT record publishing its public half

    def sign(
        self,
        message: bytes,
        domain: str,
        selector: str,
        *,
        algorithm: bytes | None = None,
        headers: list[bytes] | None = None,
    ) -> bytes:
        """``message`` with this key's DKIM-Signature on top."""
        signature = dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            self.private,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=algorithm or self.algorithm,
            include_headers=headers,
        )
        return signature + message


def rsa_key(bits: int = 2048) -> SigningKey:
    return _rsa(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def rsa_512_key() -> SigningKey:
    """A 512-bit key (shipped: the cryptography package no longer makes keys under 1024)."""
    key = serialization.load_pem_private_key((DATA / "dkim" / "rsa512.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return _rsa(key)


def _rsa(key: rsa.RSAPrivateKey) -> SigningKey:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(
        b"rsa-sha256", private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    )


def ed25519_key() -> SigningKey:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(
        b"ed25519-sha256",
        base64.b64encode(seed),
        f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}",
    )


@dataclass
class AuthWorld:
    dns: ZoneServer
    resolver: Resolver

    def publish(self, name: str, rdtype: str, text: str) -> None:
        self.dns.add(name, rdtype, txt_text(text) if rdtype == "TXT" else text)

    def publish_key(self, key: SigningKey, domain: str, selector: str) -> None:
        self.publish(f"{selector}._domainkey.{domain}", "TXT", key.record)


@asynccontextmanager
async def auth_world() -> AsyncIterator[AuthWorld]:
    """A zone server on loopback and a fresh resolver (empty cache) asking only it."""
    dns = ZoneServer()
    port = await dns.start()
    try:
        yield AuthWorld(dns, Resolver(nameservers=[("127.0.0.1", port)]))
    finally:
        dns.close()


def message(
    sender: str = "alice@example.test",
    subject: str = "Lunch",
    body: bytes = b"Shall we meet at noon?\r\n",
) -> bytes:
    """A plain message from ``sender``, CRLF throughout."""
    return (
        f"From: Alice <{sender}>\r\n"
        "To: Bob <bob@example.net>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Fri, 04 Dec 2026 15:00:00 +0000\r\n"
        f"Message-ID: <m1@{sender.rpartition('@')[2]}>\r\n"
        "\r\n"
    ).encode() + body
