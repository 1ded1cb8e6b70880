"""DMARC (RFC 7489): does the author's domain vouch for this message, and what does it ask?

The author domain is the domain of the RFC5322.From address. A message passes DMARC when an
authenticated identifier is *aligned* with it (section 3.1):

* a DKIM signature that passed, whose ``d=`` is the From domain (``adkim=s``, strict) or has
  the same organizational domain (``adkim=r``, relaxed, the default);
* SPF that passed for the RFC5321.MailFrom domain (for a null sender, the HELO domain SPF
  checked instead, RFC 7208 2.4), under ``aspf`` alike.

The policy record (section 6.6.3) is the TXT record at ``_dmarc.<from-domain>`` that starts
with ``v=DMARC1``; when there is none, the one at ``_dmarc.<organizational-domain>``, whose
``sp=`` (default ``p=``) then applies, since the From domain is its subdomain. Several records
at one name, or none, mean no policy (``none``). A record without a valid ``p=`` counts as
``p=none`` when it has a ``rua=`` and as no record otherwise. A DNS failure is ``temperror``.

``pct`` is honoured (section 6.6.4): a message not sampled gets the next lower policy
(``reject`` -> ``quarantine`` -> ``none``). ``pct=100`` (the default) and ``pct=0`` are exact;
in between the choice is random, as the RFC asks. DMARCbis drops ``pct`` for ``t=y``, which
reads the same as ``pct=0`` with ``t=y`` and is treated so.

The organizational domain comes from the Public Suffix List shipped inside the
``publicsuffixlist`` package (its whole list, ICANN and private sections, as OpenDMARC uses it);
it is never fetched at run time, so it is as fresh as the installed package. A name under an
unknown top-level domain is its own public suffix's child (``mail.example.test`` ->
``example.test``).
"""

from __future__ import annotations

import email.utils
import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from publicsuffixlist import PublicSuffixList

from stalwart_py import names
from stalwart_py.mime import headers
from stalwart_py.resolver import DnsError, DnsTemporaryError, NameNotFound, Resolver

if TYPE_CHECKING:
    from stalwart_py.inbound.dkim import DkimResult

POLICIES = ("none", "quarantine", "reject")
_sample = random.Random()


class SpfVerdict(Protocol):
    """What DMARC reads of ``inbound.spf.SpfResult`` (the MAIL FROM check): its result and
    the domain it was checked for."""

    @property
    def result(self) -> str: ...

    @property
    def domain(self) -> str: ...


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """The verdict, with RFC 8601's ``header.from`` (``domain``) and the policy to apply."""

    result: str  # pass fail none temperror permerror
    domain: str  # the RFC5322.From domain
    policy: str  # none quarantine reject: p= (or sp=) as published, after pct
    aligned_by: str | None  # "dkim" | "spf" when it passed
    reason: str
    record_domain: str = ""  # where the policy record was found
    published_policy: str = "none"  # p= or sp= before pct sampling


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str
    adkim: str  # "r" | "s"
    aspf: str
    pct: int
    testing: bool  # DMARCbis t=y


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list inside the package; loaded once, on first use


@functools.lru_cache(maxsize=4096)  # the same senders' domains, message after message
def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the public suffix plus one label (``a.b.example.co.uk`` ->
    ``example.co.uk``); a name that is itself a public suffix is its own."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def _normalize(domain: str) -> str:
    try:
        return names.domain(domain)  # the A-label form, as DNS and d= use it
    except ValueError:
        return domain.lower().rstrip(".")


def from_domains(message: bytes) -> list[str]:
    """The distinct domains of every address in every From field of ``message`` (RFC 7489
    6.6.1: the pipeline passes them to ``verify_dmarc``, which decides on none or several)."""
    # read_all decodes UTF-8 header fields (RFC 6532, SMTPUTF8 mail) as such, so that an IDN
    # domain comes out in its A-label form. (The stdlib's header parser cost a tenth of the
    # checks of a 10 KB message.)
    found: list[str] = []
    for _name, address in email.utils.getaddresses(headers.read_all(message, "from")):
        domain = address.rpartition("@")[2] if "@" in address else ""
        if domain:
            domain = _normalize(domain)
            if domain not in found:
                found.append(domain)
    return found


def parse_record(text: str) -> DmarcRecord | None:
    """RFC 7489 6.3, or None when the record gives no policy (6.6.3: no valid ``p=`` and no
    ``rua=``). Unknown tags are ignored; a bad value of an optional tag takes its default."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    policy = tags.get("p", "").lower()
    subdomain = tags.get("sp", policy).lower()
    if policy not in POLICIES or subdomain not in POLICIES:
        if "mailto:" not in tags.get("rua", "").lower():
            return None
        policy = subdomain = "none"
    try:
        pct = min(100, max(0, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return DmarcRecord(
        policy,
        subdomain,
        "s" if tags.get("adkim", "r").lower() == "s" else "r",
        "s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct,
        tags.get("t", "n").lower() == "y",
    )


async def _records(resolver: Resolver, domain: str) -> list[str]:
    """The ``v=DMARC1`` records at ``_dmarc.<domain>`` ([] for none); raises
    DnsTemporaryError."""
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except NameNotFound:
        return []
    except DnsTemporaryError:
        raise
    except DnsError:
        return []
    # "v=DMARC1" must come first, case-sensitively (6.3), spaces around "=" allowed.
    return [t for t in texts if t.split(";", 1)[0].replace(" ", "") == "v=DMARC1"]


def aligned(identifier: str, author: str, mode: str) -> bool:
    """RFC 7489 3.1: strict is the same name; relaxed the same organizational domain."""
    identifier = _normalize(identifier)
    if mode == "s":
        return identifier == author
    return organizational_domain(identifier) == organizational_domain(author)


def _lower(policy: str) -> str:
    return POLICIES[max(0, POLICIES.index(policy) - 1)]


async def verify_dmarc(
    resolver: Resolver,
    from_domain: str | Sequence[str],
    spf_mailfrom: SpfVerdict,
    dkim: list[DkimResult],
) -> DmarcResult:
    """The DMARC verdict for a message whose From domain is ``from_domain`` (or the list
    ``from_domains`` gives), given the SPF result for MAIL FROM and the DKIM results."""
    domains = [from_domain] if isinstance(from_domain, str) else list(from_domain)
    domains = list(dict.fromkeys(_normalize(d) for d in domains if d))
    if not domains:
        return DmarcResult("none", "", "none", None, "no RFC5322.From domain")
    if len(domains) > 1:
        # 6.6.1: one evaluation per domain would let the laxest speak for all; refuse.
        return DmarcResult(
            "permerror", ",".join(domains), "none", None, "From names several domains"
        )
    author = domains[0]
    organization = organizational_domain(author)
    try:
        found = await _records(resolver, author)
        record_domain = author
        if not found and organization != author:
            found = await _records(resolver, organization)
            record_domain = organization
    except DnsTemporaryError as exc:
        return DmarcResult("temperror", author, "none", None, f"DMARC record lookup: {exc}")
    if len(found) != 1:
        why = "no DMARC record" if not found else "several DMARC records"
        return DmarcResult("none", author, "none", None, why)
    record = parse_record(found[0])
    if record is None:
        return DmarcResult("none", author, "none", None, "DMARC record without a policy")
    published = record.subdomain_policy if record_domain != author else record.policy
    policy = published
    if record.testing or (record.pct < 100 and _sample.randrange(100) >= record.pct):
        policy = _lower(published)

    def done(result: str, by: str | None, reason: str) -> DmarcResult:
        return DmarcResult(result, author, policy, by, reason, record_domain, published)

    for signature in dkim:
        if signature.result == "pass" and aligned(signature.domain, author, record.adkim):
            return done("pass", "dkim", f"DKIM signature of {signature.domain} is aligned")
    if spf_mailfrom.result == "pass" and aligned(spf_mailfrom.domain, author, record.aspf):
        return done("pass", "spf", f"SPF pass for {spf_mailfrom.domain} is aligned")
    return done("fail", None, "no aligned DKIM signature or SPF pass")
