"""The signed requests of ACME (RFC 8555 6.2): JWS in the flattened JSON serialization.

Every ACME POST carries a JWS whose protected header names the algorithm, a fresh nonce from
the server (anti-replay, 6.5), the exact URL posted to (6.4) and either the account key itself
(``jwk``, only for newAccount and revocation by certificate key) or the account's URL
(``kid``). A POST-as-GET (6.3) signs an empty payload (``""``, not ``{}``).

The account key is ECDSA P-256 (``ES256``): the signature is the raw ``r || s`` pair of 32
bytes each (RFC 7518 3.4), not the DER that OpenSSL gives; josepy does that conversion and the
JWK/thumbprint encodings (RFC 7517, RFC 7638), so this module only composes ACME's headers.

External account binding (8555 7.3.4): a CA such as ZeroSSL hands out a key id and an HMAC
key; newAccount then carries ``externalAccountBinding``, a JWS over the account's public JWK
signed with HS256 by that HMAC key, whose protected header has the key id and the newAccount
URL (and no nonce).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import josepy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2), as every JOSE field is encoded."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of base64url text with or without padding; ValueError when it is not."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


class AccountKey:
    """An ACME account key (ECDSA P-256, signed with ES256)."""

    algorithm = "ES256"

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("an ACME account key must be ECDSA P-256")
        self.key = key
        self._jwk = josepy.JWKEC(key=key.public_key())

    @classmethod
    def generate(cls) -> AccountKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> AccountKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("an ACME account key must be ECDSA P-256")
        return cls(key)

    def pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (RFC 7517): kty, crv, x, y."""
        return dict(self._jwk.to_partial_json())

    @property
    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint, base64url: the second half of key authorizations."""
        return b64url(self._jwk.thumbprint(hash_function=hashes.SHA256))

    def sign(self, url: str, payload: Any, nonce: str, kid: str | None = None) -> dict[str, str]:
        """The flattened JWS of ``payload`` for a POST to ``url``. ``payload`` None is a
        POST-as-GET (empty payload); ``kid`` None embeds the public key (newAccount)."""
        protected: dict[str, Any] = {"alg": self.algorithm, "nonce": nonce, "url": url}
        if kid is None:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = kid
        return _flattened(protected, payload, lambda data: josepy.ES256.sign(self.key, data))


def _flattened(protected: dict[str, Any], payload: Any, sign: Any) -> dict[str, str]:
    header = b64url(_compact_json(protected))
    body = "" if payload is None else b64url(_compact_json(payload))
    signature = sign(f"{header}.{body}".encode("ascii"))
    return {"protected": header, "payload": body, "signature": b64url(signature)}


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def external_account_binding(
    account: AccountKey, key_id: str, hmac_key: str, url: str
) -> dict[str, str]:
    """The ``externalAccountBinding`` field of newAccount (RFC 8555 7.3.4): the account's
    public JWK signed with HS256 under the CA-issued ``hmac_key`` (base64url, as CAs hand it
    out), with ``kid`` = the CA-issued key id and ``url`` = the newAccount URL."""
    try:
        secret = b64url_decode(hmac_key)
    except ValueError:
        raise ValueError("eab.hmac-key is not base64url text") from None
    protected = {"alg": "HS256", "kid": key_id, "url": url}
    return _flattened(protected, account.jwk, lambda data: josepy.HS256.sign(secret, data))


def key_authorization(token: str, account: AccountKey) -> str:
    """RFC 8555 8.1: ``token || '.' || base64url(JWK thumbprint)``: what a challenge proves
    the server holds, so that only the account holder can answer it."""
    return f"{token}.{account.thumbprint}"


def alpn_digest(key_authorization_text: str) -> bytes:
    """RFC 8737 3: the SHA-256 of the key authorization, carried in the acmeIdentifier
    extension of the TLS-ALPN-01 certificate."""
    return hashlib.sha256(key_authorization_text.encode("ascii")).digest()
