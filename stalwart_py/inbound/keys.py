"""DKIM key records (RFC 6376 3.6.1), fetched through the one resolver before dkimpy runs.

dkimpy asks for keys through a synchronous ``dnsfunc(name, timeout=...)``. Called from the
event loop that would block it on the network, so DKIM and ARC verification first collect
every ``<selector>._domainkey.<domain>`` name the message needs, look them all up at once
through ``stalwart_py.resolver.Resolver`` (asynchronous, cached, with its timeout), and then
hand dkimpy a ``dnsfunc`` that answers from what was fetched and never touches the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio
import dkim
import dkim.util

from stalwart_py.resolver import DnsError, DnsTemporaryError, NameNotFound, Resolver

# dkimpy logs every failed signature at ERROR through the logger it is given; those are
# verdicts about other people's mail, reported in our results, not errors of ours.
QUIET = logging.getLogger("stalwart_py.inbound.dkimpy")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False

MAX_KEY_LOOKUPS = 20  # distinct key names per message (DKIM signatures plus ARC sets)


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """What DNS said for one key name: ``found`` the record, ``missing`` (NXDOMAIN, NODATA,
    or no record that is a DKIM key), ``temporary`` (SERVFAIL, timeout)."""

    status: str  # "found" | "missing" | "temporary"
    record: str = ""
    detail: str = ""


def key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}".lower().rstrip(".")


def _pick_record(texts: list[str]) -> str | None:
    """The key among a name's TXT records. RFC 6376 3.6.2.2 leaves several records undefined;
    like OpenDKIM we take the first that reads as a tag list with ``p=`` (a wildcard SPF
    record at the same name is not a key)."""
    for text in texts:
        try:
            tags = dkim.util.parse_tag_value(text.encode("utf-8", "replace"))
        except dkim.util.InvalidTagValueList:
            continue
        if b"p" in tags:
            return text
    return None


async def _lookup(resolver: Resolver, name: str) -> KeyLookup:
    try:
        texts = await resolver.txt(name)
    except NameNotFound:
        return KeyLookup("missing", detail="no key record (NXDOMAIN)")
    except DnsTemporaryError as exc:
        return KeyLookup("temporary", detail=f"key lookup failed: {exc}")
    except DnsError as exc:
        return KeyLookup("missing", detail=f"key lookup failed: {exc}")
    record = _pick_record(texts)
    if record is None:
        return KeyLookup("missing", detail="no key record" if not texts else "no DKIM key record")
    return KeyLookup("found", record)


async def fetch_keys(resolver: Resolver, names: Iterable[str]) -> dict[str, KeyLookup]:
    """Every distinct name looked up concurrently (at most ``MAX_KEY_LOOKUPS``)."""
    wanted = list(dict.fromkeys(names))[:MAX_KEY_LOOKUPS]
    if len(wanted) <= 1:  # the usual case: no task group (its turns cost more than a cache hit)
        return {name: await _lookup(resolver, name) for name in wanted}
    found: dict[str, KeyLookup] = {}

    async def one(name: str) -> None:
        found[name] = await _lookup(resolver, name)

    async with anyio.create_task_group() as group:
        for name in wanted:
            group.start_soon(one, name)
    return found


def dnsfunc(fetched: dict[str, KeyLookup]) -> Callable[..., bytes | None]:
    """dkimpy's DNS hook answering from ``fetched``: the record, or None (no key), or
    ``dkim.DnsTimeoutError`` for a temporary failure, which dkimpy turns into a failed
    verification (callers report temperror themselves, from ``fetched``)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        entry = fetched.get(name.decode("utf-8", "replace").lower().rstrip("."))
        if entry is None or entry.status == "missing":
            return None
        if entry.status == "temporary":
            raise dkim.DnsTimeoutError(entry.detail)
        return entry.record.encode("utf-8", "replace")

    return lookup
