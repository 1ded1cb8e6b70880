"""The common case of DKIM verification without dkimpy's slow paths (RFC 6376 3.4, 3.7).

dkimpy verifies correctly but slowly: it splits the whole message into lines with a regular
expression for every signature, parses the RSA key from ASN.1 in pure Python for every
message, and converts the signature and the result between bytes and integers one byte at a
time. For a 10 KB message that was most of the cost of all our checks (issue 15). This module
does the same computation for the signatures almost every message carries:

* the message is split once, at its first empty line, and shared by all its signatures;
* the body canonicalization (RFC 6376 3.4.3/3.4.4) and its hash run on bytes with ``hashlib``,
  and the relaxed rules' regular expressions only run when the body has whitespace they would
  change (a tab, two spaces, a space before a line end);
* the key is parsed once per key record text (``functools.lru_cache``), and the RSA check is
  one ``pow`` on integers (RSASSA-PKCS1-v1_5, RFC 8017 8.2.2) against the same encoding dkimpy
  builds, Ed25519 the same PyNaCl call dkimpy makes.

The verdicts must be dkimpy's, exactly (tests/unit/test_dkim_fast.py compares them on
generated messages), so this module reuses dkimpy's own header parser, header selection and
header hashing, and returns ``None`` -- "let dkimpy decide" -- for everything it does not
reproduce: a message with bare LF line ends or without a header/body separator, ``l=``,
algorithms other than rsa-sha256 and ed25519-sha256, keys dkimpy flags oddly (service type
tlsrpt), malformed base64, signatures of another length than the modulus, and any exception.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass

import dkim
import dkim.canonicalization as canon
import dkim.crypto
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_FAST_ALGORITHMS = {b"rsa-sha256": b"rsa", b"ed25519-sha256": b"ed25519"}
_WSP = re.compile(rb"\s+")
# dkimpy's RE_BTAG (the b= value of the signature field, emptied for hashing), rewritten to
# match the same text faster: its FWS, ``(?:(?:\s*\r?\n)?\s+)?``, matches exactly the runs of
# whitespace, so "(FWS base64-char)*" is "the longest run of whitespace and base64 characters
# that ends in a base64 character", one character-class loop instead of a group per character.
_BTAG = re.compile(rb"([;\s]b\s*=)(?:[\sa-zA-Z0-9+/=]*[a-zA-Z0-9+/=])?(?:\r?\n\Z)?")

PASS = "pass"
BAD_BODY_HASH = "body hash mismatch"
BAD_SIGNATURE = "signature mismatch"


@dataclass(slots=True)
class Message:
    """A message split once: dkimpy's header fields (name, raw value) and the body, with the
    canonical body hashes computed so far (signatures with the same body canonicalization
    share them)."""

    headers: list
    body: bytes
    bodies: dict

    def body_hash(self, algorithm: type, name: str) -> bytes:
        key = (algorithm, name)
        digest = self.bodies.get(key)
        if digest is None:
            digest = hashlib.new(name, _canonical_body(algorithm, self.body)).digest()
            self.bodies[key] = digest
        return digest


def split(message: bytes) -> Message | None:
    """The message as dkimpy's ``rfc822_parse`` reads it, or None where our split could
    differ from dkimpy's (bare LF line ends, no empty line, an empty line first)."""
    if message.count(b"\n") != message.count(b"\r\n") or message.startswith(b"\r\n"):
        return None
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return None
    headers, _rest = dkim.rfc822_parse(message[: end + 2])
    # With CRLF the only line end, dkimpy's body (the lines after the first empty one, joined
    # by CRLF) is exactly the octets after the separator.
    return Message(headers, message[end + 4 :], {})


def _canonical_body(algorithm: type, body: bytes) -> bytes:
    """RFC 6376 3.4.3 (simple) or 3.4.4 (relaxed). The relaxed rules as dkimpy applies them
    (WSP before each CRLF removed, then each run of WSP made one space) with bytes methods
    instead of its regular expressions, which match at every single space of a text."""
    if algorithm is canon.Relaxed:
        if b" \r\n" in body or b"\t\r\n" in body:
            lines = body.split(b"\r\n")  # the last piece has no CRLF after it: kept as is
            body = b"\r\n".join([line.rstrip(b" \t") for line in lines[:-1]] + lines[-1:])
        if b"\t" in body:
            body = body.replace(b"\t", b" ")
        while b"  " in body:  # each pass halves every run of spaces
            body = body.replace(b"  ", b" ")
        return canon.correct_empty_body(canon.strip_trailing_lines(body))
    return canon.strip_trailing_lines(body)


@functools.lru_cache(maxsize=256)
def _key(record: str) -> tuple[bytes, object] | None:
    """(key type, key) for a record dkimpy would use as is: an RSA key as (modulus, the
    ``cryptography`` public key), an Ed25519 key as PyNaCl's VerifyKey. None when dkimpy's
    parse would fail or flag it (left to dkimpy for the exact verdict). Cached by record
    text: the same few keys sign most mail."""
    try:
        pk, _bits, ktag, tlsrpt = dkim.evaluate_pk("key", record)
    except Exception:  # dkimpy's verdict on a bad key is kept by letting it decide
        return None
    if tlsrpt or pk is None:
        return None
    if ktag == b"rsa":
        # The very integers dkimpy parsed, so both verify against the same key.
        numbers = rsa.RSAPublicNumbers(pk["publicExponent"], pk["modulus"])
        return ktag, (pk["modulus"], numbers.public_key())
    if ktag == b"ed25519":
        return ktag, pk
    return None


def verify(message: Message, index: int, tags: dict[bytes, bytes], record: str) -> str | None:
    """PASS, BAD_BODY_HASH or BAD_SIGNATURE for the ``index``-th DKIM-Signature field, whose
    parsed tags are ``tags``, against the key record ``record``; None: let dkimpy decide.
    The caller has already applied ``dkim.validate_signature_fields`` and the key checks."""
    try:
        return _verify(message, index, tags, record)
    except Exception:  # anything unexpected: dkimpy gives the verdict it always gave
        return None


def _verify(message: Message, index: int, tags: dict[bytes, bytes], record: str) -> str | None:
    ktype = _FAST_ALGORITHMS.get(tags.get(b"a", b""))
    if ktype is None or b"l" in tags or b"bh" not in tags:
        return None
    key = _key(record)
    if key is None or key[0] != ktype:
        return None
    fields = [(k, v) for k, v in message.headers if k.lower() == b"dkim-signature"]
    sig_header = fields[index]
    policy = canon.CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    expected = base64.b64decode(_WSP.sub(b"", tags[b"bh"]), validate=True)
    if message.body_hash(policy.body_algorithm, "sha256") != expected:
        return BAD_BODY_HASH
    include = [x.lower() for x in re.split(rb"\s*:\s*", tags[b"h"])]
    if b"from" in include:  # dkimpy hashes one more From (its bug#644046): so do we
        include.append(b"from")
    # dkimpy's hash_headers: it canonicalizes every field, then selects; selecting first is
    # the same (a raw field name has no whitespace, so its lower case is its relaxed name)
    # and touches only the few signed. The signature field itself goes last, b= emptied,
    # without its line end (RFC 6376 3.7).
    selected = policy.canonicalize_headers(dkim.select_headers(message.headers, include))
    name, value = policy.canonicalize_headers([(sig_header[0], _BTAG.sub(b"\\1", sig_header[1]))])[
        0
    ]
    hasher = hashlib.sha256()
    for field_name, field_value in [*selected, (name, value.rstrip())]:
        hasher.update(field_name)
        hasher.update(b":")
        hasher.update(field_value)
    signature = base64.b64decode(_WSP.sub(b"", tags[b"b"]), validate=True)
    if ktype == b"rsa":
        modulus, public = key[1]
        size = (modulus.bit_length() + 7) // 8
        # dkimpy reads any length and any integer; OpenSSL wants exactly the modulus' length
        # and a value under it: other signatures are dkimpy's to judge.
        if len(signature) != size or int.from_bytes(signature, "big") >= modulus:
            return None
        # dkimpy compares s^e mod n with 00 01 FF.. 00 DigestInfo(SHA-256) in full. OpenSSL
        # checks the same padding (type 1, at least 8 FF) and hands back what follows it, so
        # equality with the DigestInfo is the same test, done in C.
        encoded = dkim.crypto.EMSA_PKCS1_v1_5_encode(hasher, size)
        digest_info = encoded[encoded.index(b"\x00", 2) + 1 :]
        try:
            recovered = public.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except InvalidSignature:
            return BAD_SIGNATURE
        return PASS if recovered == digest_info else BAD_SIGNATURE
    if len(signature) != 64:
        return None
    try:
        key[1].verify(hasher.digest(), signature)
    except nacl.exceptions.BadSignatureError:
        return BAD_SIGNATURE
    return PASS
