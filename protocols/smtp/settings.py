"""The ``smtp.*`` and ``lmtp.*`` tables, after KumoMTA's listener settings.

Merged like every protocol table: ``[server.smtp]`` for every smtp listener, then the
listener's ``smtp.*``, then the matching peer scopes (``peer."10.0.0.0/8".smtp.*``). The
defaults below are the documentation of each key.

``domains`` decides what happens to a recipient domain that is not local (RCPT policy)::

    [server.smtp.domains."example.org"]
    relay = true                      # anyone may relay to it (a backup MX, say)
    [server.smtp.domains."bounces.example.com"]
    oob = true                        # out-of-band bounces (RFC 3464 DSNs) arrive here
    [server.smtp.domains."*.example.net"]
    fbl = true                        # feedback loop reports (RFC 5965 ARF) to every subdomain
    [server.smtp.domains."quiet.example.net"]
    fbl = false                       # ... except this one

A wildcard ``*.example.com`` matches subdomains only, never ``example.com`` itself; an
explicit entry beats any wildcard and the longest wildcard beats a shorter one. Options an
entry leaves unset are taken from the next less specific match, so an entry may set an
option to false to carve itself out of a wildcard.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Annotated, Literal

from stalwart_py.config.types import Duration, Hostname, Network, Range, Size

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
MECHANISMS = ("PLAIN", "LOGIN")  # what this module frames over SMTP (RFC 4954)


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    """``domains."<name>"``: unset (None) options come from the next less specific match."""

    relay: bool | None = None  # anyone may relay to it (a backup MX, say)
    oob: bool | None = None  # out-of-band bounces (RFC 3464 DSNs) arrive here
    fbl: bool | None = None  # feedback loop reports (RFC 5965 ARF) arrive here


@dataclass(frozen=True, slots=True)
class ResolvedDomain:
    """The options in force for one domain, after wildcards and carve-outs."""

    relay: bool = False
    oob: bool = False
    fbl: bool = False

    @property
    def report_kind(self) -> str | None:
        """ "dsn" for an oob domain, "arf" for an fbl domain, else None."""
        return "dsn" if self.oob else "arf" if self.fbl else None


def resolve_domain(domains: dict[str, DomainPolicy], domain: str) -> ResolvedDomain:
    """Apply the matching rules of the module docstring to a lowercase domain name."""
    matches: list[DomainPolicy] = []
    exact = domains.get(domain)
    if exact is not None:
        matches.append(exact)
    labels = domain.split(".")
    for start in range(1, len(labels)):  # *.a.b.c, then *.b.c, then *.c: most specific first
        wildcard = domains.get("*." + ".".join(labels[start:]))
        if wildcard is not None:
            matches.append(wildcard)
    options = {}
    for name in ("relay", "oob", "fbl"):
        value = next((v for m in matches if (v := getattr(m, name)) is not None), False)
        options[name] = value
    return ResolvedDomain(**options)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``auth.*``: SMTP AUTH (RFC 4954) through the directory's SASL mechanisms."""

    require: bool = False  # submission: MAIL before AUTH gets 530 5.7.0
    mechanisms: tuple[Literal["PLAIN", "LOGIN"], ...] = MECHANISMS  # offered mechanisms
    allow_plaintext: bool = False  # offer AUTH before TLS (passwords in the clear)


@dataclass(frozen=True, slots=True)
class TimeoutSettings:
    """``timeout.*``: RFC 5321 4.5.3.2.7 asks a server to wait at least 5 minutes."""

    command: Duration = 300.0  # for the next command line
    data: Duration = 600.0  # for the next block of DATA or BDAT content


@dataclass(frozen=True, slots=True)
class RateSettings:
    """``rate.*``: per-minute limits for strangers on MX listeners (not submission, not
    authenticated clients, not ``relay-hosts``), counted per client address (IPv6 per /64,
    ``ipv6-prefix-length``) over this server's listeners together. Unset: no limit. Over the
    limit: ``421 4.7.0`` and the connection is closed, or ``451 4.7.0`` for MAIL FROM; the text
    says how many seconds until a retry can succeed. See stalwart_py/inbound/rate.py."""

    connections_per_ip: Annotated[int, Range(1)] | None = None  # connections a minute
    messages_per_ip: Annotated[int, Range(1)] | None = None  # messages (MAIL FROM) a minute


BareLineEnd = Literal["reject", "fix"]


@dataclass(frozen=True, slots=True)
class LmtpSettings:
    """``lmtp.*``: LMTP (RFC 2033) into local mailboxes; it never relays."""

    banner: str = "LMTP stalwart-py"  # the greeting is "220 <hostname> <banner>"
    hostname: Hostname | None = None  # None: the listener's hostname (server.hostname)
    max_messages_per_connection: Annotated[int, Range(1)] = 10_000  # further MAIL: 451 4.7.0
    max_recipients_per_message: Annotated[int, Range(1)] = 1024  # further RCPT: 452 4.5.3
    max_message_size: Size = 25 * 1024 * 1024  # advertised in SIZE (RFC 1870)
    max_line_length: Size = 1000  # a DATA text line with its CRLF (RFC 5321 4.5.3.1.6); 0: none
    max_bad_commands: Annotated[int, Range(1)] = 10  # then 421 and the session is closed
    bare_lf: BareLineEnd = "fix"  # a LF without CR in the content: reject, or make it CRLF
    bare_cr: BareLineEnd = "fix"  # a CR without LF in the content: reject, or make it CRLF
    timeout: TimeoutSettings = field(default_factory=TimeoutSettings)
    # [filter."<id>"] tables run over each message after DATA, in this order (docs/filters.md)
    filters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SmtpSettings(LmtpSettings):
    """``smtp.*``: SMTP (RFC 5321) for MX, submission and submissions listeners."""

    banner: str = "ESMTP stalwart-py"
    # Addresses (IPs, CIDRs) that may relay without AUTH; Unix-socket peers count as local.
    relay_hosts: tuple[Network, ...] = field(default=LOOPBACK, metadata={"one_or_many": True})
    domains: dict[str, DomainPolicy] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)
    rate: RateSettings = field(default_factory=RateSettings)
    # Hold messages for remote recipients in memory until their first transient failure
    # (KumoMTA's deferred_spool): faster, but a crash loses what is held. README: SMTP.
    deferred_spool: bool = False

    def __post_init__(self) -> None:
        for name in self.domains:
            bare = name.removeprefix("*.")
            if not bare or "*" in bare or name != name.lower():
                raise ValueError(
                    f'domains."{name}": expected a lowercase domain or "*.domain" wildcard'
                )
