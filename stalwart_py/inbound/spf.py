"""SPF, the Sender Policy Framework (RFC 7208): may this client IP send mail for this domain?

``verify_spf`` checks both identities of an SMTP transaction (section 2.3, 2.4): the HELO name
and MAIL FROM (for the null reverse-path, ``postmaster@`` the HELO name). ``check_host`` is
the function of section 4: fetch the domain's one ``v=spf1`` TXT record, evaluate its
mechanisms left to right, the first that matches gives the result by its qualifier
(``+`` pass, ``-`` fail, ``~`` softfail, ``?`` neutral); none matching follows ``redirect=``,
else the result is neutral. ``include:`` matches when the included domain's check passes.

The limits of section 4.6.4 hold for one whole check, includes and redirects counted together:
at most 10 mechanisms and modifiers that ask DNS (include, a, mx, ptr, exists, redirect), at
most 2 "void" lookups (NXDOMAIN or no records) among them, at most 10 MX names for an ``mx``
and 10 PTR names for a ``ptr`` or ``%{p}``; past one of them the result is ``permerror``. The
check as a whole is bounded by a timeout (20 s, the section's suggestion), past which it is
``temperror``, as is any DNS failure (section 5: "terminates immediately"). Every lookup goes
through the server's one ``Resolver`` (``stalwart_py.resolver``), whose cache makes a warm check
cost no DNS at all.

A ``fail`` carries an explanation (section 6.2): the ``exp=`` TXT record of the domain whose
record failed, macro-expanded (``%{c}``, ``%{r}``, ``%{t}`` allowed there), or when it has none
or it cannot be had, ``default_explanation``. ``received_spf`` writes the ``Received-SPF``
header of section 9.1 (``spf_macros`` holds the macros, ``spf_record`` the record syntax).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from dataclasses import dataclass

import anyio

from stalwart_py.inbound.spf_macros import (
    MacroContext,
    MacroError,
    Part,
    expand,
    parse_macro_string,
)
from stalwart_py.inbound.spf_record import (
    Mechanism,
    PermError,
    Record,
    TempError,
    parse_record,
    select_record,
)
from stalwart_py.resolver import DnsError, DnsTemporaryError, Resolver

__all__ = [
    "DEFAULT_EXPLANATION",
    "SpfResult",
    "check_host",
    "received_spf",
    "verify_spf",
]

MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10
CHECK_TIMEOUT = 20.0
DEFAULT_EXPLANATION = "%{c} is not one of %{d}'s designated mail servers (SPF)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of one identity's check."""

    result: str  # pass fail softfail neutral none permerror temperror
    domain: str  # the domain checked: MAIL FROM's, or the HELO name
    identity: str  # "mailfrom" or "helo"
    explanation: str | None = None  # for fail: what the domain says (for the 550 reply)
    reason: str = ""  # for logs and the header's comment: what decided it
    sender: str = ""  # the mailbox checked: local@domain (postmaster@helo for "<>" and HELO)
    helo: str = ""
    client_ip: str = ""
    mechanism: str | None = None  # the term that matched, e.g. "ip4:192.0.2.0/24"


async def verify_spf(
    resolver: Resolver,
    ip: str,
    mail_from: str,
    helo: str,
    receiver: str,
    *,
    default_explanation: str = DEFAULT_EXPLANATION,
    timeout: float = CHECK_TIMEOUT,
) -> tuple[SpfResult, SpfResult]:
    """Both identities of a transaction: (MAIL FROM, HELO). ``mail_from`` is the reverse-path
    without brackets ("" for the null one), ``receiver`` this server's host name. (The two run
    one after the other: side by side in a task group, a cold pair waits less, but a warm
    pair, the usual case, cost a third more CPU.)"""
    helo_name = helo.strip().rstrip(".") if helo else ""

    async def check(domain: str, sender: str, identity: str) -> SpfResult:
        return await check_host(
            resolver,
            ip,
            domain,
            sender,
            helo=helo,
            receiver=receiver,
            identity=identity,
            default_explanation=default_explanation,
            timeout=timeout,
        )

    helo_result = await check(helo_name, f"postmaster@{helo_name}", "helo")
    if not mail_from:  # section 2.4: the null reverse-path is postmaster@ the HELO name
        return dataclasses.replace(helo_result, identity="mailfrom"), helo_result
    local, _, domain = mail_from.rpartition("@")
    mail_result = await check(domain, f"{local or 'postmaster'}@{domain}", "mailfrom")
    return mail_result, helo_result


async def check_host(
    resolver: Resolver,
    ip: str,
    domain: str,
    sender: str,
    *,
    helo: str,
    receiver: str,
    identity: str = "mailfrom",
    default_explanation: str = DEFAULT_EXPLANATION,
    timeout: float = CHECK_TIMEOUT,
) -> SpfResult:
    """RFC 7208 section 4: the SPF result for ``ip`` sending as ``sender`` from ``domain``."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client seen through an IPv6 socket
    if domain.endswith("."):
        domain = domain[:-1]
    local, _, _ = sender.rpartition("@")
    sender = f"{local or 'postmaster'}@{domain}"
    base = SpfResult("none", domain, identity, sender=sender, helo=helo, client_ip=str(address))
    if not _checkable(domain):  # section 4.3: not a domain that can have a record
        return dataclasses.replace(base, reason=f"{domain!r} is not a domain name")
    check = _Check(resolver, address)
    context = MacroContext(sender, domain, address, helo, receiver, check.validated_name)
    try:
        with anyio.fail_after(timeout):
            outcome = await check.check_host(context, top=True)
            explanation = outcome.explanation
            if outcome.result == "fail" and explanation is None:
                explanation = await _expand_text(default_explanation, context)
    except PermError as exc:
        return dataclasses.replace(base, result="permerror", reason=str(exc))
    except TempError as exc:
        return dataclasses.replace(base, result="temperror", reason=str(exc))
    except TimeoutError:
        return dataclasses.replace(
            base, result="temperror", reason=f"the check took longer than {timeout:g} s"
        )
    return dataclasses.replace(
        base,
        result=outcome.result,
        explanation=explanation if outcome.result == "fail" else None,
        reason=outcome.reason,
        mechanism=outcome.mechanism,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: str
    reason: str
    mechanism: str | None = None
    explanation: str | None = None


class _Check:
    """One check_host() with its includes and redirects: the counters of section 4.6.4."""

    def __init__(self, resolver: Resolver, ip: IPAddress) -> None:
        self.resolver = resolver
        self.ip = ip
        self.dns_terms = 0
        self.voids = 0
        self._ptr_names: list[str] | None = None
        self._validated: dict[str, bool] = {}

    async def check_host(self, context: MacroContext, *, top: bool = False) -> _Outcome:
        domain = context.domain
        record = await self._record(domain)
        if record is None:
            return _Outcome("none", f"no SPF record at {domain}")
        ip = self.ip
        for mechanism in record.mechanisms:
            network = mechanism.network
            if network is not None:  # ip4, ip6: no DNS, so no coroutine (records list dozens)
                matched = ip.version == network.version and ip in network
            elif mechanism.name == "all":
                matched = True
            else:
                self._count_term(mechanism.text)  # every other mechanism asks DNS
                matched = await self._matches(mechanism, context)
            if matched:
                explanation = None
                if mechanism.qualifier == "fail":
                    explanation = await self._explanation(record, context)
                return _Outcome(
                    mechanism.qualifier,
                    f"{domain} matched {mechanism.text}",
                    mechanism.text,
                    explanation,
                )
        if record.redirect is not None and not record.has_all:
            self._count_term("redirect")
            target = await expand(record.redirect, context)
            outcome = await self.check_host(dataclasses.replace(context, domain=target))
            if outcome.result == "none":
                raise PermError(f"redirect={target}: no SPF record there")
            return outcome
        return _Outcome("neutral", f"no mechanism of {domain} matched", "default")

    def _count_term(self, term: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise PermError(f"more than {MAX_DNS_TERMS} DNS-querying terms (at {term})")

    async def _record(self, domain: str) -> Record | None:
        """Section 4.4/4.5: the domain's SPF record, or None."""
        try:
            texts = await self.resolver.txt(domain)
        except DnsTemporaryError as exc:
            raise TempError(str(exc)) from None
        except DnsError:  # no such domain, or a name that cannot be asked
            return None
        text = select_record(texts)
        return parse_record(text) if text is not None else None

    async def _matches(self, mechanism: Mechanism, context: MacroContext) -> bool:
        name = mechanism.name
        target = context.domain
        if mechanism.domain is not None:
            target = await expand(mechanism.domain, context)
        if name == "include":
            outcome = await self.check_host(dataclasses.replace(context, domain=target))
            if outcome.result == "none":
                raise PermError(f"include:{target}: no SPF record there")
            return outcome.result == "pass"
        if name == "a":
            addresses = await self._lookup(target, self._address_type(), void=True)
            return self._in_any(addresses, mechanism)
        if name == "mx":
            return await self._mx_matches(target, mechanism)
        if name == "ptr":  # section 5.5: a validated PTR name in the target domain
            target = target.lower()
            for ptr_name in await self._ptr(void=True):
                inside = ptr_name == target or ptr_name.endswith("." + target)
                if inside and await self._valid(ptr_name):
                    return True
            return False
        # exists: an A record is enough, whatever the client's address family (section 5.7)
        return bool(await self._lookup(target, "A", void=True))

    async def _mx_matches(self, target: str, mechanism: Mechanism) -> bool:
        exchanges = await self._lookup(target, "MX", void=True)
        if len(exchanges) > MAX_MX_NAMES:
            raise PermError(f"mx:{target}: more than {MAX_MX_NAMES} MX records")
        for text in exchanges:
            exchange = text.partition(" ")[2].rstrip(".")
            if not exchange:  # the null MX of RFC 7505 names no host
                continue
            addresses = await self._lookup(exchange, self._address_type(), void=False)
            if self._in_any(addresses, mechanism):
                return True
        return False

    def _address_type(self) -> str:
        return "A" if self.ip.version == 4 else "AAAA"

    def _in_any(self, addresses: list[str], mechanism: Mechanism) -> bool:
        length = mechanism.cidr4 if self.ip.version == 4 else mechanism.cidr6
        return any(self.ip in _network(text, length) for text in addresses)

    async def _lookup(self, name: str, rdtype: str, *, void: bool) -> list[str]:
        """Records, or [] for a name that does not exist (or cannot be asked); a void
        answer counts against the limit when ``void``; DNS failure is temperror."""
        try:
            records = await self.resolver.lookup(name, rdtype)
        except DnsTemporaryError as exc:
            raise TempError(str(exc)) from None
        except DnsError:
            records = []
        if void and not records:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise PermError(f"more than {MAX_VOID_LOOKUPS} void DNS lookups (at {name})")
        return records

    async def _ptr(self, *, void: bool) -> list[str]:
        """The first 10 PTR names of the client (section 4.6.4)."""
        if self._ptr_names is None:
            try:
                names = await self.resolver.ptr(str(self.ip))
            except DnsTemporaryError as exc:
                if void:  # the ptr mechanism: temperror; %{p}: just "unknown"
                    raise TempError(str(exc)) from None
                names = []
            except DnsError:
                names = []
            self._ptr_names = names[:MAX_PTR_NAMES]
            if void and not names:
                self.voids += 1
                if self.voids > MAX_VOID_LOOKUPS:
                    raise PermError(f"more than {MAX_VOID_LOOKUPS} void DNS lookups (at PTR)")
        return self._ptr_names

    async def _valid(self, name: str) -> bool:
        """Section 5.5: a PTR name is validated when its addresses include the client's;
        a failed lookup skips the name."""
        if name not in self._validated:
            try:
                addresses = await self.resolver.lookup(name, self._address_type())
            except DnsError:
                addresses = []
            self._validated[name] = any(ipaddress.ip_address(a) == self.ip for a in addresses)
        return self._validated[name]

    async def validated_name(self, domain: str) -> str:
        """%{p} (section 7.3): a validated name of the client, the current domain or one of
        its subdomains preferred; "unknown" when there is none."""
        names = [name for name in await self._ptr(void=False) if await self._valid(name)]
        domain = domain.lower()
        for wanted in (
            lambda n: n == domain,
            lambda n: n.endswith("." + domain),
            lambda n: True,
        ):
            for name in names:
                if wanted(name):
                    return name
        return "unknown"

    async def _explanation(self, record: Record, context: MacroContext) -> str | None:
        """Section 6.2: the exp= text, or None when there is none or it is not usable (no
        or several TXT records, a DNS failure, non-ASCII, a macro error)."""
        if record.explanation is None:
            return None
        target = await expand(record.explanation, context)
        try:
            texts = await self.resolver.txt(target)
        except DnsError:
            return None
        if len(texts) != 1 or not texts[0].isascii():
            return None
        try:
            return await _expand_text(texts[0], context)
        except MacroError:
            return None


@functools.lru_cache(maxsize=4096)
def _network(address: str, length: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An answer's address widened to the mechanism's CIDR length (parsing costs more than
    the comparison, and the same answers come back message after message)."""
    return ipaddress.ip_network(f"{address}/{length}", strict=False)


async def _expand_text(text: str, context: MacroContext) -> str:
    parts: tuple[Part, ...] = parse_macro_string(text, explanation=True)
    return await expand(parts, context, domain=False)


def _checkable(domain: str) -> bool:
    """Section 4.3: a fully qualified domain name: several labels, none empty or over 63
    octets, 253 in all; not an address literal."""
    labels = domain.split(".")
    return (
        len(labels) > 1
        and len(domain) <= 253
        and all(0 < len(label) <= 63 for label in labels)
        and not domain.startswith("[")
    )


# -- the Received-SPF header (section 9.1) -----------------------------------------------------

_COMMENTS = {
    "pass": "domain of {sender} designates {ip} as permitted sender",
    "fail": "domain of {sender} does not designate {ip} as permitted sender",
    "softfail": "domain of transitioning {sender} does not designate {ip} as permitted sender",
    "neutral": "{ip} is neither permitted nor denied by domain of {sender}",
    "none": "domain of {sender} does not designate permitted sender hosts",
    "permerror": "permanent error in processing domain of {sender}: {reason}",
    "temperror": "temporary error in processing domain of {sender}: {reason}",
}


def received_spf(result: SpfResult, ip: str, receiver: str) -> bytes:
    """The ``Received-SPF:`` header field for ``result``, folded, CRLF-terminated::

    Received-SPF: pass (mx.example.org: domain of alice@example.com designates
     192.0.2.1 as permitted sender) client-ip=192.0.2.1;
     envelope-from="alice@example.com"; helo=mail.example.com; receiver=mx.example.org;
     identity=mailfrom; mechanism="ip4:192.0.2.0/24"
    """
    comment = f"{receiver}: " + _COMMENTS[result.result].format(
        sender=result.sender or result.domain, ip=ip, reason=result.reason
    )
    pairs = [("client-ip", ip), ("envelope-from", result.sender)]
    if result.helo:
        pairs.append(("helo", result.helo))
    if result.result in ("permerror", "temperror") and result.reason:
        pairs.append(("problem", result.reason))
    pairs += [("receiver", receiver), ("identity", result.identity)]
    if result.mechanism and result.mechanism != "default":
        pairs.append(("mechanism", result.mechanism))
    words = [result.result, *("(" + _ctext(comment) + ")").split(" ")]
    words += [f"{key}={_value(value)};" for key, value in pairs]
    words[-1] = words[-1].rstrip(";")
    lines = ["Received-SPF:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > 78 and lines[-1].strip():
            lines.append("")
        lines[-1] += " " + word
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _ctext(text: str) -> str:
    """Comment text: parentheses and backslashes quoted, controls and spaces runs tidied."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    clean = clean.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return " ".join(clean.split())


_ATEXT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


def _value(value: str) -> str:
    """A dot-atom when it is one, else a quoted-string (RFC 5322 3.2.3, 3.2.4)."""
    atoms = value.split(".")
    if value and all(atom and set(atom) <= _ATEXT for atom in atoms):
        return value
    clean = "".join(ch if ch.isprintable() else "?" for ch in value)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'
