"""The checks of one MX session, step by step, and the ``[auth]`` / ``[spam.dnsbl]`` policy.

``SessionChecks`` is made for a session whose mail is checked (``protocols/smtp/intake.py``
decides which) and is asked at three moments:

``mail`` (MAIL FROM)
    SPF for the MAIL FROM identity and for the HELO identity (RFC 7208 2.3, 2.4). With
    ``auth.spf.verify = "strict"``: ``fail`` is refused here with ``550 5.7.23`` (RFC 7372),
    ``temperror`` with ``451 4.7.24``; the sender learns at once, before sending the content,
    and a refused transaction costs us no DATA.
``rcpt`` (each RCPT TO, checked once per transaction)
    The DNS allowlists, then the blocklists, for the client address (once per session) and
    the envelope sender's domain. A listing with ``action = "reject"`` refuses every RCPT with
    ``554 5.7.1`` naming the list, as Postfix's ``reject_rbl_client``; with ``"junk"`` the
    message is accepted and quarantined.
``data`` (the end of DATA or the last BDAT)
    DKIM (every signature), ARC, iprev and the From domain in the domain blocklists, at once;
    then DMARC (it needs SPF and DKIM). Then the policy, in this order:

    * ``auth.dkim.verify = "strict"``: signatures present and none passing is ``550 5.7.20``
      (a key we could not fetch, ``temperror``, refuses nothing).
    * ``auth.arc.verify = "strict"``: a chain that fails is ``550 5.7.29`` (RFC 8617).
    * DMARC ``fail`` (unless ``auth.dmarc.verify = "disable"``), unless a valid ARC chain's
      latest sealer is in ``auth.arc.trusted-sealers``: the published policy is followed:
      ``p=reject`` is ``550 5.7.1``, ``p=quarantine`` files the message into Junk. With
      ``strict``, any DMARC ``fail`` is refused; ``temperror`` is ``451 4.7.1``.
    * ``auth.iprev.verify = "strict"``: ``fail`` is ``550 5.7.25`` (RFC 7372).
    * The From domain listed by a domain blocklist: ``554 5.7.1`` or Junk.

    Accepted, the message gets our ``Authentication-Results`` (``results.py``) and a
    ``Received-SPF`` field, after any field claiming our authserv-id was removed.

DNS failures are ``temperror`` in the header and refuse nothing, except the two ``strict``
cases above. Everything is checked on the message exactly as received (a forged
Authentication-Results a DKIM signature covers must not break the signature), then cleaned.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from stalwart_py.config.inbound import AuthSettings, DnsblSettings
from stalwart_py.inbound import dnsbl
from stalwart_py.inbound.arc import ArcResult, verify_arc
from stalwart_py.inbound.dkim import DkimResult, verify_dkim
from stalwart_py.inbound.dmarc import DmarcResult, from_domains, verify_dmarc
from stalwart_py.inbound.iprev import IprevResult, verify_iprev
from stalwart_py.inbound.results import AuthenticationResults, remove_ours
from stalwart_py.inbound.spf import SpfResult, received_spf, verify_spf
from stalwart_py.metrics import Metrics
from stalwart_py.resolver import Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SPF_CACHE = 16  # SPF answers a session keeps, by (sender, HELO name)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An SMTP answer refusing the command: code, enhanced status code, text."""

    code: int
    enhanced: str
    text: str


@dataclass(slots=True)
class Accepted:
    """The message as it goes on to delivery: our fields prepended, and why it goes to Junk
    (None: it does not)."""

    message: bytes
    quarantine: str | None = None


@dataclass(slots=True)
class _Transaction:
    """What the checks learnt during one transaction."""

    sender: str = ""
    helo: str = ""
    spf_mailfrom: SpfResult | None = None
    spf_helo: SpfResult | None = None
    listed: list[dnsbl.Listing] | None = None  # None until the first RCPT asked the lists
    junk: list[dnsbl.Listing] = field(default_factory=list)


class SessionChecks:
    """The checks of one session; ``ip`` is the client's address (as the PROXY header told
    it), ``hostname`` our authserv-id."""

    def __init__(
        self,
        resolver: Resolver,
        auth: AuthSettings,
        dnsbl_settings: DnsblSettings,
        ip: IPAddress,
        hostname: str,
        log: logging.Logger | logging.LoggerAdapter,
        metrics: Metrics | None = None,
    ) -> None:
        self.resolver = resolver
        self._counted = (
            metrics.counter(
                "stalwart_inbound_auth_results",
                "Sender authentication results of checked mail (Authentication-Results)",
                ["method", "result"],
            )
            if metrics is not None
            else None
        )
        self._listed = (
            metrics.counter(
                "stalwart_inbound_dnsbl_listings", "Clients or domains a DNS list named", ["zone"]
            )
            if metrics is not None
            else None
        )
        self.auth = auth
        self.dnsbl = dnsbl_settings
        self.ip = ip
        self.hostname = hostname
        self.log = log
        self._iprev: IprevResult | None = None
        self._ip_listings: list[dnsbl.Listing] | None = None  # asked once per session
        self._allowed = False  # listed by an allow-zone: no blocklist is asked
        self._spf: dict[tuple[str, str], tuple[SpfResult, SpfResult]] = {}  # (sender, helo)
        self._txn = _Transaction()

    # -- MAIL FROM --------------------------------------------------------------------------

    async def mail(self, sender: str, helo: str) -> Refusal | None:
        """A new transaction from ``sender`` ("" for the null sender) after ``helo``."""
        self._txn = txn = _Transaction(sender=sender, helo=helo)
        if self.auth.spf.verify == "disable":
            return None
        # A client often sends several messages from one sender in a session: the answer
        # is the same (the resolver's cache keeps the records for their TTLs anyway).
        key = (sender, helo)
        cached = self._spf.get(key)
        if cached is None:
            cached = await verify_spf(self.resolver, str(self.ip), sender, helo, self.hostname)
            if len(self._spf) >= SPF_CACHE:
                self._spf.clear()
            if "temperror" not in (cached[0].result, cached[1].result):  # may work next time
                self._spf[key] = cached
        txn.spf_mailfrom, txn.spf_helo = cached
        result = txn.spf_mailfrom
        if self.auth.spf.verify != "strict":
            return None
        if result.result == "fail":
            self.log.info("SPF fail for <%s> from %s: refused (strict)", sender, self.ip)
            text = result.explanation or f"{result.domain} does not allow {self.ip} to send"
            return Refusal(550, "5.7.23", f"SPF check failed: {text}")
        if result.result == "temperror":
            return Refusal(451, "4.7.24", f"SPF check of {result.domain} failed for now")
        return None

    # -- RCPT TO ----------------------------------------------------------------------------

    async def rcpt(self) -> Refusal | None:
        """The DNS lists for the client and the envelope sender's domain (once per
        transaction; a refusal is repeated for every RCPT)."""
        txn = self._txn
        if txn.listed is None:
            listings = await self._ip_listed()
            domain = txn.sender.rpartition("@")[2]
            if domain and self.dnsbl.domain_zones and not self._allowed:
                listings = listings + await dnsbl.lookup_domain(
                    self.resolver, domain, self.dnsbl.domain_zones
                )
            txn.listed = listings
            self._count_listings(listings)
            if listings and self.dnsbl.action == "junk":
                txn.junk.extend(listings)
        if txn.listed and self.dnsbl.action == "reject":
            return self._dnsbl_refusal(txn.listed[0])
        return None

    async def _ip_listed(self) -> list[dnsbl.Listing]:
        if self._ip_listings is None:
            settings, listings = self.dnsbl, []
            if settings.allow_zones:
                allowed = await dnsbl.lookup_ip(self.resolver, self.ip, settings.allow_zones)
                if allowed:
                    self.log.info("%s is allowlisted: %s", self.ip, allowed[0].describe())
                    self._allowed = True
            if settings.ip_zones and not self._allowed:
                listings = await dnsbl.lookup_ip(self.resolver, self.ip, settings.ip_zones)
            self._ip_listings = listings
        return self._ip_listings

    def _count_listings(self, listings: list[dnsbl.Listing]) -> None:
        for listing in listings:
            if self._listed is not None:
                self._listed.labels(listing.zone).inc()

    def _dnsbl_refusal(self, listing: dnsbl.Listing) -> Refusal:
        self.log.info("DNSBL: %s", listing.describe())
        subject = (
            f"Client host [{listing.subject}]"
            if listing.subject == str(self.ip)
            else f"Domain {listing.subject}"
        )
        reason = f"; {listing.reason}" if listing.reason else ""
        return Refusal(
            554, "5.7.1", f"Service unavailable; {subject} blocked using {listing.zone}{reason}"
        )

    # -- end of DATA ------------------------------------------------------------------------

    async def data(self, message: bytes) -> Refusal | Accepted:
        """Check the content; the refusal, or the message to deliver."""
        txn, auth = self._txn, self.auth
        dkim: list[DkimResult] = []
        arc: ArcResult | None = None
        listings: list[dnsbl.Listing] = []
        wanted = auth.dmarc.verify != "disable" or bool(self.dnsbl.domain_zones)
        authors = from_domains(message) if wanted else []

        async def run_dkim() -> None:
            nonlocal dkim
            dkim = await verify_dkim(self.resolver, message)

        async def run_arc() -> None:
            nonlocal arc
            arc = await verify_arc(self.resolver, message)

        async def run_iprev() -> None:
            if self._iprev is None:
                self._iprev = await verify_iprev(self.resolver, str(self.ip))

        async def run_domains() -> None:
            for domain in authors[:1]:
                listings.extend(
                    await dnsbl.lookup_domain(self.resolver, domain, self.dnsbl.domain_zones)
                )

        jobs = []
        if auth.dkim.verify != "disable" or auth.dmarc.verify != "disable":
            jobs.append(run_dkim)
        if auth.arc.verify != "disable" or auth.arc.trusted_sealers:
            if _has_field(message, b"arc-seal"):
                jobs.append(run_arc)
            else:  # the common case, without parsing the message for a chain
                arc = ArcResult("none", (), "no ARC sets")
        if auth.iprev.verify != "disable" and self._iprev is None:  # once per session
            jobs.append(run_iprev)
        if self.dnsbl.domain_zones and not self._allowed and authors:
            jobs.append(run_domains)
        await _all(jobs)
        self._count_listings(listings)
        dmarc: DmarcResult | None = None
        if auth.dmarc.verify != "disable":
            spf = txn.spf_mailfrom or SpfResult("none", "", "mailfrom", reason="not checked")
            dmarc = await verify_dmarc(self.resolver, authors, spf, dkim)
        overridden = self._arc_override(dmarc, arc)
        refusal = self._policy(dmarc, overridden, dkim, arc)
        if refusal is None and listings and self.dnsbl.action == "reject":
            refusal = self._dnsbl_refusal(listings[0])
        if refusal is not None:
            return refusal
        quarantine = self._quarantine(dmarc, overridden, txn.junk + listings)
        methods = (auth.spf, auth.dkim, auth.dmarc, auth.arc, auth.iprev)
        # Every method disabled: nothing was checked, nothing to record (forgeries still go).
        checked = any(method.verify != "disable" for method in methods)
        header = self._results(dmarc, overridden, dkim, arc) if checked else b""
        if txn.spf_mailfrom is not None:
            header += received_spf(txn.spf_mailfrom, str(self.ip), self.hostname)
        cleaned, removed = remove_ours(message, self.hostname)
        if removed:
            self.log.info("removed %d Authentication-Results field(s) claiming to be ours", removed)
        return Accepted(header + cleaned, quarantine)

    def _arc_override(self, dmarc: DmarcResult | None, arc: ArcResult | None) -> str | None:
        """The trusted sealer whose valid chain overrides a DMARC failure, if any."""
        if dmarc is None or dmarc.result != "fail" or arc is None or arc.result != "pass":
            return None
        trusted = {name.lower().rstrip(".") for name in self.auth.arc.trusted_sealers}
        if arc.sealers and arc.sealers[-1].lower().rstrip(".") in trusted:
            return arc.sealers[-1]
        return None

    def _policy(
        self,
        dmarc: DmarcResult | None,
        overridden: str | None,
        dkim: list[DkimResult],
        arc: ArcResult | None,
    ) -> Refusal | None:
        auth = self.auth
        if (
            auth.dkim.verify == "strict"
            and dkim
            and not any(r.result == "pass" for r in dkim)
            and any(r.result != "temperror" for r in dkim)  # a key we could not fetch: wait
        ):
            return Refusal(550, "5.7.20", "No passing DKIM signature found")
        if auth.arc.verify == "strict" and arc is not None and arc.result == "fail":
            return Refusal(550, "5.7.29", f"ARC validation failure: {arc.reason}")
        if dmarc is not None and overridden is None:
            strict = auth.dmarc.verify == "strict"
            if dmarc.result == "fail" and (dmarc.policy == "reject" or strict):
                self.log.info("DMARC: %s fails (%s): refused", dmarc.domain, dmarc.reason)
                return Refusal(
                    550,
                    "5.7.1",
                    f"Rejected by the DMARC policy of {dmarc.domain}: the message is not "
                    "authenticated by its domain",
                )
            if dmarc.result == "temperror" and strict:
                return Refusal(451, "4.7.1", f"DMARC check of {dmarc.domain} failed for now")
        iprev = self._iprev
        if auth.iprev.verify == "strict" and iprev is not None and iprev.result == "fail":
            return Refusal(550, "5.7.25", f"Reverse DNS validation failed for {self.ip}")
        return None

    def _quarantine(
        self, dmarc: DmarcResult | None, overridden: str | None, junk: list[dnsbl.Listing]
    ) -> str | None:
        failed = dmarc is not None and overridden is None and dmarc.result == "fail"
        if failed and dmarc.policy == "quarantine":
            return f"DMARC policy of {dmarc.domain}: quarantine"
        if junk:
            return f"DNSBL: {junk[0].describe()}"
        return None

    def _results(
        self,
        dmarc: DmarcResult | None,
        overridden: str | None,
        dkim: list[DkimResult],
        arc: ArcResult | None,
    ) -> bytes:
        txn, auth = self._txn, self.auth
        results = AuthenticationResults(self.hostname)
        iprev = self._iprev
        if iprev is not None and auth.iprev.verify != "disable":
            results.add("iprev", iprev.result, [("policy.iprev", str(self.ip))], reason=iprev.ptr)
        if txn.spf_mailfrom is not None:
            mailfrom = txn.sender or f"postmaster@{txn.helo}"
            spf = txn.spf_mailfrom
            results.add("spf", spf.result, [("smtp.mailfrom", mailfrom)], reason=spf.reason)
        if txn.spf_helo is not None and txn.helo:
            helo = txn.spf_helo
            results.add("spf", helo.result, [("smtp.helo", txn.helo)], reason=helo.reason)
        if auth.dkim.verify != "disable":
            if not dkim:
                results.add("dkim", "none", reason="no signature")
            for signature in dkim:
                results.add(
                    "dkim",
                    signature.result,
                    [
                        ("header.d", signature.domain or None),
                        ("header.s", signature.selector or None),
                        ("header.a", signature.algorithm or None),
                        ("header.b", signature.header_b or None),
                    ],
                    reason=signature.reason,
                )
        if arc is not None and auth.arc.verify != "disable":
            sealers = ", ".join(arc.sealers)
            reason = f"sealed by {sealers}; {arc.reason}" if sealers else arc.reason
            results.add("arc", arc.result, reason=reason)
        if dmarc is not None:
            reason = dmarc.reason
            if overridden is not None:
                reason = f"{reason}; policy overridden by the ARC chain of {overridden}"
            results.add(
                "dmarc",
                dmarc.result,
                [("header.from", dmarc.domain or None), ("policy.dmarc", dmarc.policy)],
                reason=reason,
            )
        if self._counted is not None:
            for entry in results.entries:
                method, _, rest = entry.partition("=")
                self._counted.labels(method, rest.split(" ", 1)[0]).inc()
        return results.header()


async def _all(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    """Run the jobs at once (their DNS queries overlap); one alone is awaited directly, as a
    task group costs event-loop turns that a warm cache makes the larger part."""
    if len(jobs) == 1:
        await jobs[0]()
        return
    async with anyio.create_task_group() as group:
        for job in jobs:
            group.start_soon(job)


def _has_field(message: bytes, name: bytes) -> bool:
    """Whether the header block has a field called ``name``, without parsing it."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[: end + 2]
    return re.search(rb"^" + re.escape(name) + rb"[ \t]*:", head, re.I | re.M) is not None
