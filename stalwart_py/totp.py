"""Time-based one-time passwords (TOTP, RFC 6238) for two-factor sign-in, sans I/O.

A code is HOTP (RFC 4226) of the current time step: ``HMAC-SHA1(secret, step)`` where the
step is the 8-byte big-endian count of ``PERIOD``-second intervals since the Unix epoch; the
last nibble of the MAC picks 4 bytes ("dynamic truncation", RFC 4226 5.3), whose low 31 bits,
modulo 10^``DIGITS``, are the code. What authenticator apps implement: SHA-1, 6 digits, 30 s.

* **Secrets** are ``SECRET_BYTES`` random bytes (160 bits, RFC 4226 4 recommends it), given to
  the user in base32 inside an ``otpauth://`` URI (the Key Uri Format every authenticator app
  reads, usually from a QR code).
* **Clock drift**: a code of the step before or after the current one is accepted too
  (``TOLERANCE``, RFC 6238 5.2 recommends at most one step back).
* **Replay**: the caller keeps the last step a code was accepted for and accepts a code only
  for a later step (RFC 6238 5.2: "the verifier MUST NOT accept the second attempt of the
  same OTP"); ``matching_step`` returns the step so the caller can do that atomically.
* **Recovery codes**: ``RECOVERY_CODES`` random codes of 80 bits, for a lost phone; each is
  kept as its SHA-256 digest (80 random bits need no slow hash) and used once.

Written here rather than taken from ``pyotp``: the algorithm is the dozen lines below on the
standard library's ``hmac``, and a dependency would not spare the replay and recovery rules,
which are the store's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

from stalwart_py.app_passwords import ALPHABET

SECRET_BYTES = 20  # 160 bits
DIGITS = 6
PERIOD = 30  # seconds per step
TOLERANCE = 1  # steps either side of the current one
RECOVERY_CODES = 10
RECOVERY_LENGTH = 16  # characters of ALPHABET, 5 bits each: 80 bits
RECOVERY_GROUP = 4


def new_secret() -> str:
    """A new secret in base32 without padding, as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.upper().replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 5.3: the code for ``counter`` (``digest`` other than SHA-1 only for RFC 6238's
    own test vectors)."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    (value,) = struct.unpack(">I", mac[offset : offset + 4])
    return str((value & 0x7FFFFFFF) % 10**digits).zfill(digits)


def step(now: float) -> int:
    """RFC 6238 4.2: the time step of ``now`` (Unix seconds)."""
    return int(now) // PERIOD


def code(secret: str, now: float) -> str:
    """The code an authenticator app shows at ``now``."""
    return hotp(_key(secret), step(now))


def matching_step(secret: str, candidate: str, now: float) -> int | None:
    """The time step within ``TOLERANCE`` of ``now`` whose code is ``candidate``, or None.
    Every step is computed and compared in constant time, so the time taken says nothing."""
    candidate = candidate.strip()
    if len(candidate) != DIGITS or not candidate.isascii() or not candidate.isdigit():
        return None
    key, current = _key(secret), step(now)
    found = None
    for offset in range(-TOLERANCE, TOLERANCE + 1):
        if hmac.compare_digest(hotp(key, current + offset), candidate) and found is None:
            found = current + offset
    return found


def is_code(text: str) -> bool:
    """Whether ``text`` has the shape of a TOTP code (rather than a recovery code)."""
    text = text.strip()
    return len(text) == DIGITS and text.isascii() and text.isdigit()


def uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI (Key Uri Format) an authenticator app enrols from."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": PERIOD,
        }
    )
    return f"otpauth://totp/{label}?{query}"


def new_recovery_codes() -> list[str]:
    """``RECOVERY_CODES`` new codes as shown once: ``abcd-efgh-jkmn-pqrs``."""
    codes = []
    for _ in range(RECOVERY_CODES):
        text = "".join(secrets.choice(ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(
            "-".join(
                text[i : i + RECOVERY_GROUP] for i in range(0, RECOVERY_LENGTH, RECOVERY_GROUP)
            )
        )
    return codes


def recovery_digest(text: str) -> str | None:
    """The digest a recovery code is kept as (case, dashes and spaces do not matter), or None
    when ``text`` cannot be one."""
    canonical = text.lower().replace("-", "").replace(" ", "")
    if len(canonical) != RECOVERY_LENGTH or not all(c in ALPHABET for c in canonical):
        return None
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
