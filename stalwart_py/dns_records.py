"""The DNS records a hosted domain needs, from the server's own configuration, and a check of
what DNS really says (``stalwart-py dns records|check DOMAIN``, ``GET /api/dns/{domain}``).

``records(...)`` lists, for a domain D served by the host H (``server.hostname``):

* ``D MX 10 H`` (RFC 5321 5.1);
* SPF (RFC 7208): ``D TXT "v=spf1 mx -all"``, and ``H TXT "v=spf1 a -all"`` for HELO checks
  when H is inside D (one ``v=spf1 a mx -all`` when H is D itself: two SPF records would be
  a permerror);
* DKIM (RFC 6376): one ``<selector>._domainkey.D TXT`` per signing key of D, from the keys
  the queue signs with (``[dkim."D"]`` and ``<data-dir>/dkim/D/*.pem``);
* DMARC (RFC 7489): ``_dmarc.D TXT "v=DMARC1; p=reject; rua=mailto:postmaster@D"``, as
  Stalwart suggests: with SPF and DKIM above, our own mail passes;
* MTA-STS (RFC 8461 3.1): ``_mta-sts.D TXT "v=STSv1; id=..."``, the id a digest of the policy
  we serve (stalwart_py/clients.py), so it changes when ``[mta-sts]`` does; and TLS-RPT
  (RFC 8460 3): ``_smtp._tls.D TXT "v=TLSRPTv1; rua=mailto:postmaster@D"``;
* SRV (RFC 6186, RFC 8314 5.1): ``_imaps._tcp``, ``_imap._tcp``, ``_submissions._tcp``,
  ``_submission._tcp`` (and ``_sieve._tcp``, RFC 5804 1.8) with port and target from the
  listeners; a service we do not offer gets the "not available" record ``0 0 0 .``;
* ``autoconfig.D``, ``autodiscover.D`` and ``mta-sts.D`` as CNAMEs of H (the HTTP listener
  answers them: protocols/http/autoconfig.py).

* CAA (RFC 8659 4.2) when ``[acme."<id>"]`` is configured: ``D CAA 0 issue "<ca>"`` for the
  CA of each ``directory`` whose CAA domain is known (``CAA_DOMAINS``: Let's Encrypt's
  ``letsencrypt.org`` and others); a directory of an unknown CA (a private step-ca, Pebble)
  suggests nothing, since a wrong CAA record would make every CA refuse the domain.

``check(...)`` asks DNS (through the one Resolver) for each record and grades it ``ok``,
``missing`` (nothing of its kind there), ``different`` (something else there: both are shown)
or ``error`` (DNS did not answer); then FCrDNS for each address of H: its PTR names H and H
resolves back to it (what receivers' iprev checks, RFC 8601 2.7.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stalwart_py import clients
from stalwart_py.clients import Endpoint
from stalwart_py.config import Config
from stalwart_py.queue.dkim import DkimKey
from stalwart_py.resolver import DnsError, DnsTemporaryError, NameNotFound, Resolver

TTL = 3600
# ACME directory host names (and their parents) -> the CA's CAA issuer domain, as each CA
# documents it (RFC 8659 4.2: the issuer-domain-name the CA checks for).
CAA_DOMAINS = {
    "api.letsencrypt.org": "letsencrypt.org",  # acme-v02 and acme-staging-v02
    "acme.zerossl.com": "sectigo.com",  # ZeroSSL issues under Sectigo
    "api.pki.goog": "pki.goog",  # Google Trust Services (dv.acme-v02.api.pki.goog)
    "api.buypass.com": "buypass.com",
    "api.test4.buypass.no": "buypass.com",
    "acme.ssl.com": "ssl.com",
}
TXT_CHUNK = 255  # RFC 1035 3.3.14: a character-string is at most 255 octets


@dataclass(frozen=True, slots=True)
class Record:
    """One record to publish. ``value`` is the rdata as zone-file text, except TXT, whose
    ``value`` is the text itself (quoted and split when rendered)."""

    name: str  # absolute, without the final dot
    rdtype: str
    value: str
    purpose: str  # what it is for, in a few words

    def zone_line(self) -> str:
        if self.rdtype == "TXT":
            chunks = [self.value[i : i + TXT_CHUNK] for i in range(0, len(self.value), TXT_CHUNK)]
            rdata = " ".join(
                '"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
            )
        else:
            rdata = self.value
        return f"{self.name}. {TTL} IN {self.rdtype} {rdata}"

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "type": self.rdtype,
            "value": self.value,
            "purpose": self.purpose,
            "zone-line": self.zone_line(),
        }


@dataclass(frozen=True, slots=True)
class Check:
    record: Record
    status: str  # ok | missing | different | error
    found: tuple[str, ...] = ()
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**self.record.as_json(), "status": self.status, "found": list(self.found)}


@dataclass(frozen=True, slots=True)
class ReverseCheck:
    """FCrDNS of one address of the host."""

    address: str
    status: str  # ok | missing | different | error
    ptr: tuple[str, ...] = ()
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "status": self.status,
            "ptr": list(self.ptr),
            "detail": self.detail,
        }


@dataclass
class Report:
    domain: str
    hostname: str
    checks: list[Check] = field(default_factory=list)
    reverse: list[ReverseCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in (*self.checks, *self.reverse))


def _srv(found: list[Endpoint], service: str, security: str) -> str:
    endpoint = next((e for e in found if e.service == service and e.security == security), None)
    if endpoint is None:
        return "0 0 0 ."  # RFC 6186 3.4 / RFC 2782: the service is decidedly not available
    return f"0 1 {endpoint.port} {endpoint.host}."


SRV_SERVICES = (
    ("_imaps._tcp", "imap", "tls", "IMAP over implicit TLS (RFC 6186, RFC 8314)"),
    ("_imap._tcp", "imap", "starttls", "IMAP with STARTTLS (RFC 6186)"),
    ("_submissions._tcp", "submission", "tls", "submission over implicit TLS (RFC 8314)"),
    ("_submission._tcp", "submission", "starttls", "submission with STARTTLS (RFC 6186)"),
    ("_sieve._tcp", "managesieve", "starttls", "ManageSieve (RFC 5804)"),
)


def records(
    domain: str, config: Config, found: list[Endpoint], keys: list[DkimKey]
) -> list[Record]:
    """Every record ``domain`` needs (see the module docstring), in zone order of purpose."""
    host = config.hostname
    postmaster = f"mailto:postmaster@{domain}"
    out = [Record(domain, "MX", f"10 {host}.", "mail for the domain goes to this server")]
    if host == domain:
        out.append(Record(domain, "TXT", "v=spf1 a mx -all", "SPF: this server sends its mail"))
    else:
        out.append(Record(domain, "TXT", "v=spf1 mx -all", "SPF: this server sends its mail"))
        if host.endswith("." + domain):
            out.append(Record(host, "TXT", "v=spf1 a -all", "SPF of the HELO name"))
    for key in keys:
        out.append(Record(key.record_name, "TXT", key.public_record, "DKIM public key"))
    out.append(Record(f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=reject; rua={postmaster}", "DMARC"))
    out.append(
        Record(
            f"_mta-sts.{domain}",
            "TXT",
            f"v=STSv1; id={clients.mta_sts_id(config)}",
            "MTA-STS: a policy is served at mta-sts." + domain,
        )
    )
    out.append(
        Record(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua={postmaster}", "TLS reporting")
    )
    for prefix, service, security, purpose in SRV_SERVICES:
        out.append(Record(f"{prefix}.{domain}", "SRV", _srv(found, service, security), purpose))
    for label, purpose in (
        ("autoconfig", "Thunderbird autoconfig"),
        ("autodiscover", "Outlook Autodiscover"),
        ("mta-sts", "the MTA-STS policy (HTTPS)"),
    ):
        if host != f"{label}.{domain}":
            out.append(Record(f"{label}.{domain}", "CNAME", f"{host}.", purpose))
    for issuer in caa_issuers(config):
        out.append(Record(domain, "CAA", f'0 issue "{issuer}"', "CAA: the ACME CA may issue"))
    return out


def caa_issuers(config: Config) -> list[str]:
    """The CAA issuer domains of the configured ACME CAs that are known (``CAA_DOMAINS``)."""
    found: dict[str, None] = {}
    for acme in getattr(config, "acme", {}).values():
        host = urlsplit(acme.directory).hostname or ""
        labels = host.lower().split(".")
        for start in range(len(labels)):
            issuer = CAA_DOMAINS.get(".".join(labels[start:]))
            if issuer is not None:
                found[issuer] = None
                break
    return list(found)


def zone_text(domain: str, found: list[Record]) -> str:
    """The records as a zone file fragment with ``$ORIGIN``; comments say what each is for."""
    lines = [f"$ORIGIN {domain}.", f"$TTL {TTL}"]
    for record in found:
        lines.append(f"; {record.purpose}")
        lines.append(record.zone_line())
    return "\n".join(lines) + "\n"


# -- checking -------------------------------------------------------------------------------


def _tags(text: str) -> dict[str, str]:
    """A tag=value list (DKIM, DMARC, MTA-STS, TLS-RPT records), keys lower case, values
    without white space."""
    tags = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _normal(name: str) -> str:
    return name.lower().rstrip(".")


def _same(record: Record, text: str) -> bool:
    if record.rdtype == "TXT":
        if record.value.lower().startswith("v=spf1"):
            return text.lower().split() == record.value.lower().split()
        wanted, got = _tags(record.value), _tags(text)
        if "p" in wanted and wanted.get("v") == "DKIM1":
            return got.get("p") == wanted["p"] and got.get("k", "rsa") == wanted.get("k", "rsa")
        return got == wanted
    if record.rdtype in ("MX", "SRV"):
        *numbers, target = record.value.split()
        *got_numbers, got_target = text.split()
        if record.rdtype == "MX":  # any preference will do
            return _normal(got_target) == _normal(target)
        return got_numbers[2:] == numbers[2:] and _normal(got_target) == _normal(target)
    return _normal(text) == _normal(record.value)


def _kind(record: Record, text: str) -> bool:
    """Whether a TXT record found at the name is of the record's kind (an SPF record beside
    a site verification string is not a different SPF record)."""
    if record.rdtype != "TXT":
        return True
    prefix = record.value.split(";")[0].split()[0].lower()
    if prefix == "v=dkim1":
        return True  # v= is optional in a DKIM key record
    return text.strip().lower().startswith(prefix)


async def _lookup(resolver: Resolver, name: str, rdtype: str) -> list[str]:
    try:
        return await resolver.lookup(name, rdtype)
    except NameNotFound:
        return []


async def check_record(resolver: Resolver, record: Record, hostname: str) -> Check:
    try:
        found = [t for t in await _lookup(resolver, record.name, record.rdtype) if _kind(record, t)]
        if not found and record.rdtype == "CNAME":
            # An A/AAAA record with the host's addresses does the CNAME's job.
            mine = set(await _lookup(resolver, hostname, "A"))
            mine |= set(await _lookup(resolver, hostname, "AAAA"))
            theirs = set(await _lookup(resolver, record.name, "A"))
            theirs |= set(await _lookup(resolver, record.name, "AAAA"))
            if theirs and theirs == mine:
                return Check(record, "ok", tuple(sorted(theirs)), "addresses of the host")
            found = sorted(theirs)
    except DnsError as exc:
        return Check(record, "error", (), str(exc))
    if not found:
        return Check(record, "missing")
    if any(_same(record, text) for text in found):
        return Check(record, "ok", tuple(found))
    return Check(record, "different", tuple(found))


async def check_reverse(resolver: Resolver, hostname: str) -> list[ReverseCheck]:
    """FCrDNS of every address of ``hostname``: each PTR name must resolve back to the
    address, and one of them should be ``hostname`` (receivers compare it with our HELO)."""
    try:
        addresses = await _lookup(resolver, hostname, "A")
        addresses += await _lookup(resolver, hostname, "AAAA")
    except DnsTemporaryError as exc:
        return [ReverseCheck(hostname, "error", (), str(exc))]
    if not addresses:
        return [ReverseCheck(hostname, "missing", (), f"{hostname} has no address")]
    results = []
    for address in addresses:
        try:
            ptr = await resolver.ptr(address)
        except NameNotFound:
            ptr = []
        except DnsError as exc:
            results.append(ReverseCheck(address, "error", (), str(exc)))
            continue
        if not ptr:
            results.append(ReverseCheck(address, "missing", (), "no PTR record"))
            continue
        confirmed = []
        for name in ptr[:10]:  # RFC 8601 2.7.3 / RFC 7208 5.5: at most 10 names
            try:
                back = await _lookup(resolver, name, "AAAA" if ":" in address else "A")
            except DnsError:
                continue
            if address in back:
                confirmed.append(name)
        if _normal(hostname) in confirmed:
            results.append(ReverseCheck(address, "ok", tuple(ptr), "FCrDNS: PTR names the host"))
        elif confirmed:
            detail = f"FCrDNS holds for {confirmed[0]}, not for {hostname} (the HELO name)"
            results.append(ReverseCheck(address, "different", tuple(ptr), detail))
        else:
            detail = "the PTR names do not resolve back to the address"
            results.append(ReverseCheck(address, "different", tuple(ptr), detail))
    return results


async def check(resolver: Resolver, domain: str, config: Config, wanted: list[Record]) -> Report:
    report = Report(domain, config.hostname)
    for record in wanted:
        report.checks.append(await check_record(resolver, record, config.hostname))
    report.reverse = await check_reverse(resolver, config.hostname)
    return report


def report_text(report: Report) -> str:
    """One line per record and per address, for people."""
    lines = []
    for item in report.checks:
        line = f"{item.status:<9} {item.record.rdtype:<5} {item.record.name}"
        if item.status != "ok":
            line += f"\n          expected: {item.record.zone_line()}"
        if item.status == "different":
            line += "".join(f"\n          found:    {text}" for text in item.found)
        if item.detail and item.status == "error":
            line += f"\n          {item.detail}"
        lines.append(line)
    for reverse in report.reverse:
        ptr = ", ".join(reverse.ptr) or "-"
        line = f"{reverse.status:<9} PTR   {reverse.address} -> {ptr}"
        if reverse.status != "ok" and reverse.detail:
            line += f"\n          {reverse.detail}"
        lines.append(line)
    verdict = "all records are in place" if report.ok else "some records need attention"
    lines.append(f"{report.domain}: {verdict}")
    return "\n".join(lines) + "\n"
