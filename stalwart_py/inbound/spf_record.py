"""The SPF record (RFC 7208 sections 4.5, 4.6, 5 and 6): selecting it among a domain's TXT
records, and parsing it into mechanisms and modifiers.

    record    = version terms *SP          version = "v=spf1" (case-insensitive)
    terms     = *( 1*SP ( directive / modifier ) )
    directive = [ qualifier ] mechanism    qualifier = "+" / "-" / "?" / "~"
    mechanism = all / include / a / mx / ptr / ip4 / ip6 / exists
    modifier  = redirect / explanation / unknown-modifier
    unknown-modifier = name "=" macro-string   name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )

The whole record is checked before any of it is evaluated (section 4.6: a syntax error anywhere
is a ``permerror``, even after a mechanism that would match), so a parsed ``Record`` is
well-formed and evaluation only has DNS left to fail on. Parsed records are kept by text
(``parse_record`` is memoised), since the same few records are evaluated for message after
message.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from stalwart_py.inbound.spf_macros import MacroError, Part, parse_domain_spec, parse_macro_string

QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
# Mechanisms and modifiers that ask DNS, counted against the limit of section 4.6.4.
DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})

_MODIFIER = re.compile(r"^([a-zA-Z][a-zA-Z0-9_.\-]*)=(.*)$", re.S)
_MECHANISM = re.compile(r"^([+\-~?]?)([a-zA-Z0-9]+)(.*)$", re.S)
_DUAL_CIDR = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?$")
_IP = re.compile(r"^:([^/]+)(?:/([0-9]+))?$", re.S)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PermError(Exception):
    """A ``permerror``: the published record (or one it leads to) is broken."""


class TempError(Exception):
    """A ``temperror``: DNS failed; a later try may succeed."""


@dataclass(frozen=True, slots=True)
class Mechanism:
    qualifier: str  # the result when it matches: pass, fail, softfail, neutral
    name: str  # all, include, a, mx, ptr, ip4, ip6, exists
    text: str  # as written, for logs and Received-SPF's mechanism=
    domain: tuple[Part, ...] | None = None  # None: the current domain
    network: Network | None = None  # ip4, ip6
    cidr4: int = 32  # a, mx
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class Record:
    mechanisms: tuple[Mechanism, ...]
    redirect: tuple[Part, ...] | None
    explanation: tuple[Part, ...] | None

    @property
    def has_all(self) -> bool:
        """Section 6.1: a record with an "all" mechanism ignores its "redirect"."""
        return any(mechanism.name == "all" for mechanism in self.mechanisms)


def select_record(texts: list[str]) -> str | None:
    """Section 4.5: the one TXT record that is an SPF record (``v=spf1`` alone or followed by
    a space); None when there is none; more than one is a permerror."""
    found = [t for t in texts if t[:6].lower() == "v=spf1" and (len(t) == 6 or t[6] == " ")]
    if len(found) > 1:
        raise PermError("more than one SPF record")
    return found[0] if found else None


@functools.lru_cache(maxsize=1024)
def parse_record(text: str) -> Record:
    """Parse an SPF record's text (with its version); raises PermError naming the term."""
    mechanisms: list[Mechanism] = []
    modifiers: dict[str, tuple[Part, ...]] = {}
    for term in text[6:].split(" "):
        if not term:
            continue  # terms are separated by one or more spaces; trailing ones are allowed
        if not term.isascii() or not term.isprintable():
            raise PermError(f"term {term!r}: only visible ASCII characters are allowed")
        try:
            modifier = _MODIFIER.match(term)
            if modifier is not None:
                name, value = modifier.group(1).lower(), modifier.group(2)
                if name in ("redirect", "exp"):
                    if name in modifiers:
                        raise PermError(f"more than one {name}= modifier")
                    modifiers[name] = parse_domain_spec(value)
                else:  # unknown modifiers are ignored, but must be well-formed (section 6)
                    parse_macro_string(value)
                continue
            mechanisms.append(_mechanism(term))
        except MacroError as exc:
            raise PermError(f"term {term!r}: {exc}") from None
    return Record(tuple(mechanisms), modifiers.get("redirect"), modifiers.get("exp"))


def _mechanism(term: str) -> Mechanism:
    match = _MECHANISM.match(term)
    if match is None:
        raise PermError(f"term {term!r} is neither a mechanism nor a modifier")
    qualifier, name, rest = QUALIFIERS[match.group(1) or "+"], match.group(2).lower(), match[3]
    if name == "all":
        if rest:
            raise PermError(f"term {term!r}: all takes no argument")
        return Mechanism(qualifier, name, term)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise PermError(f"term {term!r}: {name} needs a domain")
        return Mechanism(qualifier, name, term, parse_domain_spec(rest[1:]))
    if name == "ptr":
        if rest and not rest.startswith(":"):
            raise PermError(f"term {term!r}: ptr takes no CIDR length")
        return Mechanism(qualifier, name, term, parse_domain_spec(rest[1:]) if rest else None)
    if name in ("a", "mx"):
        domain: tuple[Part, ...] | None = None
        if rest.startswith(":"):
            cidr = _DUAL_CIDR.search(rest, 1)
            assert cidr is not None  # the pattern matches the empty string at the end
            domain = parse_domain_spec(rest[1 : cidr.start()])
        else:
            cidr = _DUAL_CIDR.fullmatch(rest)
            if cidr is None:
                raise PermError(f"term {term!r}: bad CIDR length")
        cidr4, cidr6 = _length(cidr.group(1), 32, term), _length(cidr.group(2), 128, term)
        return Mechanism(qualifier, name, term, domain, None, cidr4, cidr6)
    if name in ("ip4", "ip6"):
        match = _IP.match(rest)
        if match is None:
            raise PermError(f"term {term!r}: expected {name}:address[/length]")
        version, bits = (4, 32) if name == "ip4" else (6, 128)
        length = _length(match.group(2), bits, term)
        try:
            address = ipaddress.ip_address(match.group(1))
        except ValueError:
            raise PermError(f"term {term!r}: {match.group(1)!r} is not an address") from None
        if address.version != version:
            raise PermError(f"term {term!r}: not an IPv{version} address")
        network = ipaddress.ip_network(f"{address}/{length}", strict=False)
        return Mechanism(qualifier, name, term, None, network)
    raise PermError(f"unknown mechanism {name!r}")


def _length(text: str | None, bits: int, term: str) -> int:
    """A CIDR length: digits without leading zeros, at most ``bits``."""
    if text is None:
        return bits
    if (text != "0" and text.startswith("0")) or int(text) > bits:
        raise PermError(f"term {term!r}: bad CIDR length /{text}")
    return int(text)
