"""iprev (RFC 8601 2.7.3): forward-confirmed reverse DNS of the connecting IP address.

The PTR names of the address are looked up, then each name's A (IPv4) or AAAA (IPv6)
records; the check passes when one of them is the address. Results, as RFC 8601 defines them:

* ``pass``: a PTR name whose forward lookup contains the address;
* ``fail``: PTR names exist but none leads back (a forward answer without the address, or
  NXDOMAIN/NODATA for it);
* ``permerror``: no PTR data at all (NXDOMAIN or NODATA);
* ``temperror``: a lookup failed for now (SERVFAIL, timeout) and nothing passed.

At most ``MAX_NAMES`` PTR names are followed (a reverse zone listing hundreds of names is
a cheap way to make us send hundreds of queries; 10 matches SPF's limit for ``ptr``, RFC 7208
5.5). The pipeline writes ``policy.iprev=<ip>`` and, when it passed, the name as a comment.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import anyio

from stalwart_py.resolver import DnsError, DnsTemporaryError, NameNotFound, Resolver

MAX_NAMES = 10


@dataclass(frozen=True, slots=True)
class IprevResult:
    result: str  # pass fail temperror permerror
    ptr: str | None  # the confirmed name (pass), else the first PTR name, if any
    ip: str = ""  # RFC 8601's policy.iprev
    reason: str = ""


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


async def _forward(resolver: Resolver, name: str, ip: Address) -> str:
    """'pass', 'fail' or 'temperror' for one PTR name."""
    try:
        if ip.version == 4:
            addresses = await resolver.a(name)
        else:
            addresses = await resolver.aaaa(name)
    except NameNotFound:
        return "fail"
    except DnsTemporaryError:
        return "temperror"
    except DnsError:
        return "fail"
    for text in addresses:
        try:
            if ipaddress.ip_address(text) == ip:
                return "pass"
        except ValueError:
            continue
    return "fail"


async def verify_iprev(resolver: Resolver, ip: str) -> IprevResult:
    """Forward-confirmed reverse DNS for ``ip`` (an IPv4-mapped IPv6 address counts as IPv4)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    ip = str(address)
    try:
        ptrs = await resolver.ptr(ip)
    except NameNotFound:
        return IprevResult("permerror", None, ip, "no PTR record (NXDOMAIN)")
    except DnsTemporaryError as exc:
        return IprevResult("temperror", None, ip, f"PTR lookup: {exc}")
    except DnsError as exc:
        return IprevResult("permerror", None, ip, f"PTR lookup: {exc}")
    names = list(dict.fromkeys(p.lower().rstrip(".") for p in ptrs if p.strip(". ")))
    if not names:
        return IprevResult("permerror", None, ip, "no PTR record")
    names = names[:MAX_NAMES]
    verdicts: dict[str, str] = {}

    async def check(name: str) -> None:
        verdicts[name] = await _forward(resolver, name, address)

    if len(names) == 1:  # the usual case: no task group (its turns cost more than a cache hit)
        await check(names[0])
    else:
        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(check, name)
    for name in names:  # the PTR order, so the reported name is stable
        if verdicts[name] == "pass":
            return IprevResult("pass", name, ip, f"{name} resolves to {ip}")
    if "temperror" in verdicts.values():
        return IprevResult("temperror", names[0], ip, "forward lookup failed")
    return IprevResult("fail", names[0], ip, f"no PTR name of {ip} resolves back to it")
