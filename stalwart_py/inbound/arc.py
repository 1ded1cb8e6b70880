"""ARC verification (RFC 8617): did the intermediaries that handled this message vouch for it?

A forwarder or mailing list that changes a message breaks its DKIM signatures, and so its
DMARC pass; if it seals the message with ARC first, it records what it saw (its
``ARC-Authentication-Results``), signs the message as it passed it on
(``ARC-Message-Signature``) and signs the chain (``ARC-Seal``). This module validates the chain
(RFC 8617 5.2) with dkimpy's ``arc_verify``, after fetching every sealer's key through the one
resolver (the same prefetch as DKIM, ``keys.py``), and returns the sealers' domains in instance
order, so the pipeline can let a valid chain sealed by an ``auth.arc.trusted-sealers`` domain
override a DMARC failure.

Results are RFC 8617's ``none`` (no ARC sets), ``pass`` and ``fail``. A key that could not be
fetched now (SERVFAIL, timeout) makes the chain ``fail`` with a reason that says so: RFC 8617
registers no temperror for ``arc``, and a chain we could not validate must not override
anything. Chains of more than ``MAX_INSTANCES`` sets fail (RFC 8617 4.2.1: at most 50).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import anyio.to_thread
import dkim
import dkim.util

from stalwart_py.inbound import dkim as inbound_dkim
from stalwart_py.inbound.keys import QUIET, KeyLookup, dnsfunc, fetch_keys, key_name
from stalwart_py.resolver import Resolver

log = logging.getLogger("stalwart_py.inbound.arc")

MAX_INSTANCES = 50
_SIGNED = (b"arc-seal", b"arc-message-signature")


@dataclass(frozen=True, slots=True)
class ArcResult:
    result: str  # pass fail none
    sealers: tuple[str, ...]  # d= of each ARC-Seal, instance 1 first
    reason: str
    oldest_pass_results: str | None = None  # the ARC-Authentication-Results of instance 1


def _chain(verifier: dkim.ARC) -> tuple[int, list[tuple[int, bytes, dict[bytes, bytes]]]]:
    """The highest instance and every ARC field as (instance, lowercased name, tags)."""
    top, headers = verifier.sorted_arc_headers()
    fields = []
    for instance, (name, value) in headers:
        try:
            tags = dkim.util.parse_tag_value(value) if name.lower() in _SIGNED else {}
        except dkim.util.InvalidTagValueList:
            tags = {}
        fields.append((instance, name.lower(), tags | {b"_value": value}))
    return top, fields


def _run(verifier: dkim.ARC, fetched: dict[str, KeyLookup]) -> tuple[bytes | None, str]:
    cv, _results, reason = verifier.verify(dnsfunc=dnsfunc(fetched))
    return cv, reason


async def verify_arc(resolver: Resolver, message: bytes) -> ArcResult:
    """Validate the ARC chain of ``message``."""
    if len(message) > inbound_dkim.MAX_MESSAGE:
        return ArcResult(
            "fail", (), f"not verified: message over {inbound_dkim.MAX_MESSAGE} octets"
        )
    head = message.split(b"\r\n\r\n", 1)[0]
    if not re.search(rb"(?im)^arc-(?:seal|message-signature|authentication-results)[ \t]*:", head):
        return ArcResult("none", (), "no ARC sets")  # most mail: spare dkimpy's parse
    try:
        verifier = dkim.ARC(message, logger=QUIET, minkey=inbound_dkim.MIN_RSA_BITS)
        top, fields = _chain(verifier)
    except dkim.DKIMException as exc:  # a header block dkimpy cannot read
        return ArcResult("fail", (), f"message header does not parse: {exc}")
    if top == 0:
        return ArcResult("none", (), "no ARC sets")
    seals = sorted((i, tags) for i, name, tags in fields if name == b"arc-seal")
    sealers = tuple(tags.get(b"d", b"").decode("utf-8", "replace").lower() for _i, tags in seals)
    oldest = next(
        (
            tags[b"_value"].decode("utf-8", "replace").strip()
            for i, name, tags in fields
            if i == 1 and name == b"arc-authentication-results"
        ),
        None,
    )

    def done(result: str, reason: str) -> ArcResult:
        return ArcResult(result, sealers, reason, oldest)

    if top > MAX_INSTANCES:
        return done("fail", f"{top} ARC sets (at most {MAX_INSTANCES})")
    names = {
        key_name(tags[b"s"].decode("ascii", "replace"), tags[b"d"].decode("ascii", "replace"))
        for _i, name, tags in fields
        if name in _SIGNED and b"s" in tags and b"d" in tags
    }
    fetched = await fetch_keys(resolver, names)
    if len(fetched) < len(names):
        return done("fail", "not verified: too many distinct keys")
    temporary = [lookup.detail for lookup in fetched.values() if lookup.status == "temporary"]
    if temporary:
        return done("fail", f"temporary DNS failure: {temporary[0]}")
    try:
        if len(message) > inbound_dkim.THREAD_THRESHOLD:
            cv, reason = await anyio.to_thread.run_sync(_run, verifier, fetched)
        else:
            cv, reason = _run(verifier, fetched)
    except dkim.DKIMException as exc:  # a malformed set dkimpy did not catch itself
        return done("fail", str(exc))
    except Exception as exc:  # dkimpy on hostile input: a verdict, never a crashed session
        log.info("dkimpy failed on an ARC chain: %r", exc)
        return done("fail", f"chain does not parse: {type(exc).__name__}")
    if cv == dkim.CV_Pass:
        return done("pass", f"chain of {top} valid")
    if cv == dkim.CV_None:
        return done("none", reason)
    return done("fail", reason)
