"""DKIM verification of incoming mail (RFC 6376; ed25519-sha256, RFC 8463; RFC 8301's limits).

Every ``DKIM-Signature`` field is checked, top to bottom, and gets one ``DkimResult``; a
message without one gets ``[]`` (the pipeline writes ``dkim=none``). ``dkim_fast`` (or dkimpy,
for what that leaves to it) does the canonicalization and the cryptography; this module decides
everything around it, so that each outcome maps onto an RFC 8601 2.7.1 result:

========== ================================================================================
pass       the body hash and the signature verify with the published key
fail       body hash mismatch; signature mismatch; the key is revoked (``p=`` empty, RFC 6376
           3.6.1 and 6.1.2 "PERMFAIL (key revoked)")
policy     signed, but in a way we do not accept (RFC 8601: "some aspect of the signature or
           signatures was not acceptable"): ``a=rsa-sha1`` and RSA keys under 1024 bits, which
           RFC 8301 says verifiers must not consider valid; signatures past the first
           ``MAX_SIGNATURES`` (up to ``MAX_REPORTED`` results in all, the others are
           left out: a message with a thousand signatures must not make a header of a
           thousand lines); a message over ``MAX_MESSAGE`` octets
neutral    the signature itself is unusable (RFC 8601: "contained syntax errors or were not
           otherwise able to be processed"): a missing or malformed tag, an unknown algorithm
           or canonicalization, ``i=`` outside ``d=``, ``h=`` without From, expired ``x=``
permerror  the key is unusable, which a later attempt will not change (RFC 6376 6.1.2's
           PERMFAILs about the key): no key record at ``<s>._domainkey.<d>`` (NXDOMAIN or
           NODATA), a key record that does not parse, a key of another type than ``a=``, a
           key whose ``h=`` excludes the hash, ``s=`` not email, ``t=s`` with ``i=`` in a
           subdomain
temperror  the key could not be fetched now (SERVFAIL, timeout): RFC 6376 6.1.2 TEMPFAIL
========== ================================================================================

A missing key is ``permerror`` rather than ``neutral``: RFC 6376 6.1.2 makes it a PERMFAIL,
and RFC 8601 2.7.1 defines permerror as an error that a later attempt is unlikely to cure,
which is what an absent record is.

Keys are fetched first, all at once, through the one resolver (``keys.fetch_keys``), then the
cryptography runs on what was fetched: rsa-sha256 and ed25519-sha256 signatures (nearly all
mail) through ``dkim_fast``, which gives dkimpy's verdicts at a fraction of its cost (the
message split once, the key parsed once per record, RSA in OpenSSL; a 10 KB message: about
0.7 ms instead of dkimpy's 4, ``bench/inbound_verify.py``), everything else through dkimpy.
That runs inline. A message over ``THREAD_THRESHOLD`` octets is verified in a worker thread,
which shortens the longest stall of the event loop (1 MB: about 7 ms instead of 14 on the
loaded 2-core machine; under dkimpy alone it was 245 ms instead of 320).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

import anyio.to_thread
import dkim
import dkim.util

from stalwart_py import names
from stalwart_py.inbound import dkim_fast
from stalwart_py.inbound.keys import QUIET, KeyLookup, dnsfunc, fetch_keys, key_name
from stalwart_py.resolver import Resolver

log = logging.getLogger("stalwart_py.inbound.dkim")

MAX_SIGNATURES = 10  # signatures verified per message; the rest are "policy"
MAX_REPORTED = 20  # results per message at most: each becomes a line of Authentication-Results
MAX_MESSAGE = 64 * 1024 * 1024  # octets; larger messages are not hashed at all
THREAD_THRESHOLD = 256 * 1024  # octets from which verification runs in a worker thread
MIN_RSA_BITS = 1024  # RFC 8301 3.2

_HASHES = {b"rsa-sha256": b"sha256", b"rsa-sha1": b"sha1", b"ed25519-sha256": b"sha256"}
_KEY_TYPES = {b"rsa-sha256": b"rsa", b"rsa-sha1": b"rsa", b"ed25519-sha256": b"ed25519"}


@dataclass(frozen=True, slots=True)
class DkimResult:
    """One signature's verdict, with RFC 8601's properties: ``header.d`` (domain),
    ``header.s`` (selector), ``header.b`` (the first characters of ``b=``, RFC 6008),
    ``header.a`` (algorithm) and ``header.i`` (identity)."""

    result: str  # pass fail neutral policy temperror permerror
    domain: str
    selector: str
    algorithm: str
    header_b: str
    reason: str
    identity: str = ""


@dataclass
class _Signature:
    index: int  # position among the message's DKIM-Signature fields, for dkimpy
    tags: dict[bytes, bytes]
    outcome: DkimResult | None = None  # decided before the cryptography
    key_name: str = ""

    def result(self, result: str, reason: str) -> DkimResult:
        def text(tag: bytes) -> str:
            return self.tags.get(tag, b"").decode("utf-8", "replace")

        b = re.sub(r"\s+", "", text(b"b"))
        return DkimResult(
            result,
            text(b"d").lower(),
            text(b"s"),
            text(b"a").lower(),
            b[:12],
            reason,
            text(b"i"),
        )


def _header_fields(message: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields as dkimpy reads them (so indexes agree with its own count)."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    head = message if end < 0 else message[: end + 2]
    headers, _body = dkim.rfc822_parse(head)
    return headers


def _signatures(message: bytes, split: dkim_fast.Message | None) -> list[_Signature]:
    found = []
    # dkim_fast's split parses the same header block the same way: parse it once.
    headers = split.headers if split is not None else _header_fields(message)
    fields = [v for k, v in headers if k.lower() == b"dkim-signature"]
    for index, value in enumerate(fields[:MAX_REPORTED]):
        try:
            tags = dkim.util.parse_tag_value(value)
        except dkim.util.InvalidTagValueList as exc:
            sig = _Signature(index, {})
            sig.outcome = sig.result("neutral", f"signature does not parse: {exc}")
        else:
            sig = _Signature(index, tags)
        found.append(sig)
    return found


def _unreadable(message: bytes, reason: str) -> list[DkimResult]:
    """A header block dkimpy cannot read (a line that is no field): nothing can be verified,
    so each DKIM-Signature found by a plain scan is a permerror, with what tags it shows."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    results = []
    pattern = rb"(?im)^dkim-signature[ \t]*:(.*(?:\r?\n[ \t].*)*)"
    for index, match in enumerate(re.finditer(pattern, head)):
        if index >= MAX_REPORTED:
            break
        try:
            tags = dkim.util.parse_tag_value(match.group(1))
        except dkim.util.InvalidTagValueList:
            tags = {}
        results.append(_Signature(index, tags).result("permerror", reason))
    return results


def _precheck(sig: _Signature, message_size: int) -> None:
    """What can be decided from the signature alone (RFC 6376 6.1.1, RFC 8301)."""
    if sig.outcome is not None:
        return
    if sig.index >= MAX_SIGNATURES:
        sig.outcome = sig.result("policy", f"not verified: over {MAX_SIGNATURES} signatures")
        return
    if message_size > MAX_MESSAGE:
        sig.outcome = sig.result("policy", f"not verified: message over {MAX_MESSAGE} octets")
        return
    try:
        dkim.validate_signature_fields(sig.tags)
    except dkim.DKIMException as exc:
        sig.outcome = sig.result("neutral", f"signature unusable: {exc}")
        return
    signed = [h.strip().lower() for h in sig.tags[b"h"].split(b":")]
    if b"from" not in signed:
        sig.outcome = sig.result("neutral", "signature unusable: From is not signed")
        return
    if sig.tags[b"a"].lower() == b"rsa-sha1":
        sig.outcome = sig.result("policy", "rsa-sha1 is not accepted (RFC 8301)")
        return
    try:
        selector = sig.tags[b"s"].decode("ascii")
        domain = sig.tags[b"d"].decode("utf-8")
        if not domain.isascii():  # RFC 8616 3.1: a U-label d=, its key under the A-label
            domain = names.domain(domain)
    except (UnicodeDecodeError, ValueError):
        sig.outcome = sig.result("neutral", "signature unusable: bad d= or s=")
        return
    sig.key_name = key_name(selector, domain)


def _check_key(sig: _Signature, lookup: KeyLookup | None) -> None:
    """RFC 6376 6.1.2: the key record against the signature."""
    if lookup is None:  # over MAX_KEY_LOOKUPS distinct names
        sig.outcome = sig.result("policy", "not verified: too many distinct keys")
        return
    if lookup.status == "temporary":
        sig.outcome = sig.result("temperror", lookup.detail)
        return
    if lookup.status == "missing":
        sig.outcome = sig.result("permerror", lookup.detail)
        return
    key = _key_tags(lookup.record)
    if isinstance(key, str):
        sig.outcome = sig.result("permerror", f"key record does not parse: {key}")
        return
    algorithm = sig.tags[b"a"].lower()
    if key.get(b"v", b"DKIM1") != b"DKIM1":
        sig.outcome = sig.result("permerror", "key record is not v=DKIM1")
    elif not re.sub(rb"\s+", b"", key.get(b"p", b"")):
        sig.outcome = sig.result("fail", "key revoked (empty p=)")
    elif key.get(b"k", b"rsa").lower() != _KEY_TYPES[algorithm]:
        sig.outcome = sig.result(
            "permerror", f"key type {key.get(b'k', b'rsa')!r} for {algorithm!r}"
        )
    elif b"h" in key and _HASHES[algorithm] not in _colon_list(key[b"h"]):
        sig.outcome = sig.result("permerror", "key record does not allow this hash (h=)")
    elif b"s" in key and not {b"*", b"email"} & set(_colon_list(key[b"s"])):
        sig.outcome = sig.result("permerror", "key is not for email (s=)")
    elif b"s" in _colon_list(key.get(b"t", b"")) and not _identity_is_domain(sig.tags):
        sig.outcome = sig.result("permerror", "key has t=s but i= is in a subdomain of d=")
    else:
        bits = _key_bits(lookup.record)
        if isinstance(bits, str):
            sig.outcome = sig.result("permerror", f"key does not parse: {bits}")
            return
        if _KEY_TYPES[algorithm] == b"rsa" and bits < MIN_RSA_BITS:
            sig.outcome = sig.result(
                "policy", f"RSA key of {bits} bits (under {MIN_RSA_BITS}, RFC 8301)"
            )


@functools.lru_cache(maxsize=256)
def _key_tags(record: str) -> dict[bytes, bytes] | str:
    """The key record's tags (read, never changed), or why they do not parse; cached by
    record text like ``_key_bits``."""
    try:
        return dkim.util.parse_tag_value(record.encode("utf-8", "replace"))
    except dkim.util.InvalidTagValueList as exc:
        return str(exc)


@functools.lru_cache(maxsize=256)
def _key_bits(record: str) -> int | str:
    """The key's size in bits, or why it does not parse. Cached by record text: the same
    few keys sign most mail, and parsing an RSA key is a good part of a verification."""
    try:
        _pk, bits, _ktag, _tlsrpt = dkim.evaluate_pk("key", record)
    except (dkim.DKIMException, ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    return bits or 0


def _colon_list(value: bytes) -> list[bytes]:
    return [part.strip().lower() for part in value.split(b":")]


def _identity_is_domain(tags: dict[bytes, bytes]) -> bool:
    identity = tags.get(b"i")
    if identity is None:
        return True
    return identity.rpartition(b"@")[2].lower() == tags[b"d"].lower()


def _raw_key_name(sig: _Signature) -> str:
    name = sig.tags[b"s"] + b"._domainkey." + sig.tags[b"d"]
    return name.decode("utf-8", "replace").lower()


def _verify_crypto(
    message: bytes,
    split: dkim_fast.Message | None,
    pending: list[_Signature],
    fetched: dict[str, KeyLookup],
):
    """The body hash and the signature of each signature still pending (sync). The common
    signatures go through ``dkim_fast`` (dkimpy's verdicts, a fraction of its cost); dkimpy
    decides whatever that module leaves to it."""
    left = []
    for sig in pending:
        verdict = None
        if split is not None:
            verdict = dkim_fast.verify(split, sig.index, sig.tags, fetched[sig.key_name].record)
        if verdict == dkim_fast.PASS:
            sig.outcome = sig.result("pass", "good signature")
        elif verdict == dkim_fast.BAD_BODY_HASH:
            sig.outcome = sig.result("fail", "body hash did not verify")
        elif verdict == dkim_fast.BAD_SIGNATURE:
            sig.outcome = sig.result("fail", "signature did not verify")
        else:
            left.append(sig)
    if left:
        _verify_dkimpy(message, left, fetched)


def _verify_dkimpy(message: bytes, pending: list[_Signature], fetched: dict[str, KeyLookup]):
    """The body hash and the signature of each signature in ``pending``, by dkimpy."""
    verifier = dkim.DKIM(message, logger=QUIET, minkey=MIN_RSA_BITS)
    # dkimpy asks for s=._domainkey.d= as written (a U-label d= too): answer under that name.
    raw = {_raw_key_name(sig): fetched[sig.key_name] for sig in pending if sig.key_name in fetched}
    lookup = dnsfunc(fetched | raw)
    for sig in pending:
        try:
            valid = verifier.verify(idx=sig.index, dnsfunc=lookup)
        except dkim.ValidationError as exc:
            if "body hash mismatch" in str(exc):
                sig.outcome = sig.result("fail", "body hash did not verify")
            else:
                sig.outcome = sig.result("neutral", f"signature unusable: {exc}")
            continue
        except dkim.DKIMException as exc:
            sig.outcome = sig.result("permerror", f"cannot verify: {exc}")
            continue
        except Exception as exc:  # dkimpy on hostile input: a verdict, never a crashed session
            log.info("dkimpy failed on signature %d: %r", sig.index, exc)
            sig.outcome = sig.result("permerror", f"cannot verify: {type(exc).__name__}")
            continue
        if valid:
            sig.outcome = sig.result("pass", "good signature")
        else:
            sig.outcome = sig.result("fail", "signature did not verify")


async def verify_dkim(resolver: Resolver, message: bytes) -> list[DkimResult]:
    """One ``DkimResult`` per ``DKIM-Signature`` field of ``message``, top first."""
    try:
        split = dkim_fast.split(message)
        signatures = _signatures(message, split)
    except dkim.DKIMException as exc:
        return _unreadable(message, f"message header does not parse: {exc}")
    for sig in signatures:
        _precheck(sig, len(message))
    wanted = [sig for sig in signatures if sig.outcome is None]
    fetched = await fetch_keys(resolver, [sig.key_name for sig in wanted])
    for sig in wanted:
        _check_key(sig, fetched.get(sig.key_name))
    pending = [sig for sig in wanted if sig.outcome is None]
    if pending:
        if len(message) > THREAD_THRESHOLD:
            await anyio.to_thread.run_sync(_verify_crypto, message, split, pending, fetched)
        else:
            _verify_crypto(message, split, pending, fetched)
    return [sig.outcome for sig in signatures if sig.outcome is not None]
