"""TOTP codes for the tests, by RFC 6238's algorithm written here apart from the server's
``stalwart_py.totp``, so that each checks the other."""

from __future__ import annotations

import base64
import hashlib
import hmac


def rfc6238(secret: str, step: int) -> str:
    """RFC 6238 with SHA-1 and 6 digits, as in the RFC's appendix A, written apart from the
    server's ``totp`` module so that the two check each other."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[19] & 0xF
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return f"{binary % 1_000_000:06d}"
