"""Password hashing and SCRAM credentials. Pure functions, no I/O.

Two kinds of secret are kept for an account, both derived from the same password:

* A **password hash** for PLAIN, LOGIN and HTTP Basic, where the client sends the password
  itself. It is scrypt (RFC 7914), a memory-hard KDF, in a self-describing string in the PHC
  style, so that parameters can be raised later without breaking old hashes::

      $scrypt$ln=15,r=8,p=1$<salt>$<key>        (salt 16 bytes, key 32 bytes; unpadded base64)

  ``ln`` is log2 of the cost N. With the defaults one hash needs 32 MiB and takes ~50-100 ms
  on a server core, which is the point: callers run :func:`hash_password` and
  :func:`verify_password` in a worker thread (``anyio.to_thread.run_sync``). After a
  successful login, :func:`needs_rehash` says whether the hash predates the current
  parameters, and the caller stores a fresh :func:`hash_password` of the password it just
  verified.

* **SCRAM-SHA-256 credentials** (RFC 5802, RFC 7677), for the challenge-response mechanism in
  which the password never crosses the wire. The server keeps only the salt, the iteration
  count, ``StoredKey = H(HMAC(SaltedPassword, "Client Key"))`` and ``ServerKey =
  HMAC(SaltedPassword, "Server Key")``, serialized as PostgreSQL does (so its ``pg_authid``
  values import as they are)::

      SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>      (padded base64)

  Guard them like the hash: with them a thief can pose as this server to its clients, and,
  having also observed one exchange, recover ClientKey and log in. The iteration count is
  PBKDF2's and is paid mostly by the client (the server only hashes and compares); 4096 is
  RFC 7677's minimum, 10000 our default.

Both are computed on the **SASLprep-normalized** password (RFC 4013, a profile of stringprep,
RFC 3454, with the tables of the stdlib :mod:`stringprep` module): non-ASCII spaces become
U+0020, soft hyphens and other "mapped to nothing" characters are dropped, the result is NFKC
(Unicode 3.2, frozen, so a hash never changes with a Python upgrade), and control characters,
private-use and other prohibited code points, or a malformed mix of right-to-left and
left-to-right text, are refused. SCRAM clients normalize the same way before deriving their
keys, so a password typed as "I\\u00adX" or with a full-width "\\uff29" gives the same keys as
"IX" on both ends. Code points unassigned in Unicode 3.2 (emoji, for one) are *allowed*
("query string" semantics): refusing them would lock out modern passwords, and hashing and
verifying normalize identically, so nothing is lost. :func:`hash_password` raises
``ValueError`` for a password SASLprep refuses or reduces to nothing;
:func:`verify_password` answers False for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass

# Current scrypt parameters. Tests may lower SCRYPT_LOG2_N for speed; keep the default strong.
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
# A stored hash asking for more memory than this is treated as malformed (never computed).
SCRYPT_MAX_MEMORY = 256 * 1024 * 1024

SCRAM_MECHANISM = "SCRAM-SHA-256"
SCRAM_ITERATIONS = 10000
SCRAM_MIN_ITERATIONS = 4096  # RFC 7677 section 4
SCRAM_MAX_ITERATIONS = 10_000_000  # a parsed value above this is treated as malformed
SCRAM_KEY_BYTES = 32  # SHA-256

_HASH_RE = re.compile(
    r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,3}),p=(?P<p>[0-9]{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]+={0,2})\$(?P<key>[A-Za-z0-9+/]+={0,2})"
)
_SCRAM_RE = re.compile(
    r"SCRAM-SHA-256\$(?P<iterations>[0-9]{1,9}):(?P<salt>[A-Za-z0-9+/=]+)"
    r"\$(?P<stored>[A-Za-z0-9+/=]+):(?P<server>[A-Za-z0-9+/=]+)"
)


# --- SASLprep (RFC 4013) -------------------------------------------------------------------


def saslprep(text: str) -> str:
    """The SASLprep form of ``text`` (RFC 4013, query semantics); ValueError if prohibited."""
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    normalized = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in normalized:
        if _prohibited(ch):
            raise ValueError(f"SASLprep prohibits the character U+{ord(ch):04X}")
    _check_bidi(normalized)
    return normalized


def _prohibited(ch: str) -> bool:
    """RFC 4013 section 2.3: the stringprep tables C.1.2 and C.2.1 to C.9."""
    return (
        stringprep.in_table_c12(ch)
        or stringprep.in_table_c21_c22(ch)
        or stringprep.in_table_c3(ch)
        or stringprep.in_table_c4(ch)
        or stringprep.in_table_c5(ch)
        or stringprep.in_table_c6(ch)
        or stringprep.in_table_c7(ch)
        or stringprep.in_table_c8(ch)
        or stringprep.in_table_c9(ch)
    )


def _check_bidi(text: str) -> None:
    """RFC 3454 section 6: right-to-left text must be all RTL and start and end with it."""
    rtl = [stringprep.in_table_d1(ch) for ch in text]
    if not any(rtl):
        return
    if any(stringprep.in_table_d2(ch) for ch in text):
        raise ValueError("SASLprep prohibits mixing right-to-left and left-to-right text")
    if not (rtl[0] and rtl[-1]):
        raise ValueError("SASLprep requires right-to-left text to start and end with RTL")


def _prepared(password: str) -> bytes:
    """The UTF-8 bytes of the SASLprep form; ValueError if refused or empty."""
    prepared = saslprep(password)
    if not prepared:
        raise ValueError("the password is empty after SASLprep")
    return prepared.encode("utf-8")


# --- scrypt hashes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ScryptHash:
    log2_n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def hash_password(password: str) -> str:
    """A fresh ``$scrypt$...`` hash of the SASLprep form of ``password`` (~50-100 ms)."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(_prepared(password), salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    params = f"ln={SCRYPT_LOG2_N},r={SCRYPT_R},p={SCRYPT_P}"
    return f"$scrypt${params}${_b64_unpadded(salt)}${_b64_unpadded(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; constant-time; False for any malformed input."""
    parsed = _parse_hash(stored)
    try:
        prepared = _prepared(password)
    except ValueError:
        prepared = None
    if parsed is None:
        return False
    if prepared is None:
        dummy_verify()  # a password SASLprep refuses costs the same as a wrong one
        return False
    key = _scrypt(prepared, parsed.salt, parsed.log2_n, parsed.r, parsed.p, len(parsed.key))
    return hmac.compare_digest(key, parsed.key)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` is malformed, not scrypt, or weaker than the current parameters."""
    parsed = _parse_hash(stored)
    if parsed is None:
        return True
    return (
        parsed.log2_n < SCRYPT_LOG2_N
        or parsed.r < SCRYPT_R
        or parsed.p < SCRYPT_P
        or len(parsed.salt) < SALT_BYTES
        or len(parsed.key) < KEY_BYTES
    )


def dummy_verify() -> None:
    """Spend what a real :func:`verify_password` spends, for an unknown user (timing safety)."""
    key = _scrypt(b"dummy password", b"\0" * SALT_BYTES, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, 32)
    hmac.compare_digest(key, bytes(KEY_BYTES))


def _parse_hash(stored: str) -> _ScryptHash | None:
    match = _HASH_RE.fullmatch(stored) if isinstance(stored, str) else None
    if match is None:
        return None
    log2_n, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
    salt, key = _b64_decode(match["salt"]), _b64_decode(match["key"])
    if salt is None or key is None or not salt or len(key) < 16:
        return None
    if not (1 <= log2_n <= 30 and r >= 1 and p >= 1):
        return None
    if _scrypt_memory(log2_n, r, p) > SCRYPT_MAX_MEMORY:
        return None
    return _ScryptHash(log2_n, r, p, salt, key)


def _scrypt(password: bytes, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    memory = _scrypt_memory(log2_n, r, p)
    return hashlib.scrypt(
        password, salt=salt, n=1 << log2_n, r=r, p=p, maxmem=memory + (1 << 20), dklen=length
    )


def _scrypt_memory(log2_n: int, r: int, p: int) -> int:
    """Bytes OpenSSL needs: 128*r*p for B plus 128*r*(N+2) for V."""
    return 128 * r * ((1 << log2_n) + 2 + p)


# --- SCRAM-SHA-256 credentials -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What a SCRAM-SHA-256 server keeps for an account (RFC 5802 section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def __repr__(self) -> str:  # the keys are password-equivalent for this server
        return f"ScramCredentials(iterations={self.iterations}, salt={self.salt.hex()}, ...)"


def scram_credentials(
    password: str, iterations: int = SCRAM_ITERATIONS, *, salt: bytes | None = None
) -> str:
    """Serialized SCRAM-SHA-256 credentials for ``password`` (a fresh 16-byte salt unless given)."""
    return format_scram_credentials(derive_scram_credentials(password, iterations, salt=salt))


def derive_scram_credentials(
    password: str, iterations: int = SCRAM_ITERATIONS, *, salt: bytes | None = None
) -> ScramCredentials:
    """Derive SaltedPassword = PBKDF2-HMAC-SHA-256 and the two keys from it (RFC 5802)."""
    if not SCRAM_MIN_ITERATIONS <= iterations <= SCRAM_MAX_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be {SCRAM_MIN_ITERATIONS}..{SCRAM_MAX_ITERATIONS}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if not salt:
        raise ValueError("the SCRAM salt must not be empty")
    salted = hashlib.pbkdf2_hmac("sha256", _prepared(password), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return ScramCredentials(salt, iterations, stored_key, server_key)


def format_scram_credentials(creds: ScramCredentials) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (padded base64)."""
    salt, stored, server = (
        base64.b64encode(value).decode("ascii")
        for value in (creds.salt, creds.stored_key, creds.server_key)
    )
    return f"{SCRAM_MECHANISM}${creds.iterations}:{salt}${stored}:{server}"


def parse_scram_credentials(text: str) -> ScramCredentials | None:
    """The inverse of :func:`format_scram_credentials`; None for anything malformed."""
    match = _SCRAM_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    iterations = int(match["iterations"])
    salt, stored, server = (_b64_decode(match[name]) for name in ("salt", "stored", "server"))
    if not 1 <= iterations <= SCRAM_MAX_ITERATIONS or not salt:
        return None
    if stored is None or server is None:
        return None
    if len(stored) != SCRAM_KEY_BYTES or len(server) != SCRAM_KEY_BYTES:
        return None
    return ScramCredentials(salt, iterations, stored, server)


# --- base64 --------------------------------------------------------------------------------


def _b64_unpadded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64_decode(text: str) -> bytes | None:
    """Strict standard base64, padded or not; None if malformed."""
    stripped = text.rstrip("=")
    if len(text) - len(stripped) > 2 or len(stripped) % 4 == 1:
        return None
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        return binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
