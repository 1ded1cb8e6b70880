"""SPF macros (RFC 7208 section 7) and the syntax of domain-specs (section 4.6.1, 7.1).

A macro-string is parsed once into literal text and ``Macro`` parts, then expanded against the
``MacroContext`` of one check. The grammar::

    macro-string = *( macro-expand / macro-literal )
    macro-expand = ( "%{" macro-letter transformers *delimiter "}" ) / "%%" / "%_" / "%-"
    macro-letter = "s" / "l" / "o" / "d" / "i" / "p" / "h" / "c" / "r" / "t" / "v"
    transformers = *DIGIT [ "r" ]
    delimiter    = "." / "-" / "+" / "," / "/" / "_" / "="
    macro-literal = %x21-24 / %x26-7E   ; visible characters except "%"

``c``, ``r`` and ``t`` are only allowed in explanation text (section 7.2). An uppercase letter
asks for the value URL-escaped (RFC 3986 unreserved characters kept). Any other ``%`` is a
syntax error, and so a ``permerror`` where the string is a term of the record.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_DOMAIN = 253  # RFC 7208 7.3: a longer expansion loses labels on the left

_MACRO = re.compile(r"%\{([a-zA-Z])([0-9]*)(r?)([.\-+,/_=]*)\}")
_ESCAPES = {"%%": "%", "%_": " ", "%-": "%20"}
_LETTERS = set("sloidphcrtv")
_EXPLANATION_ONLY = set("crt")
_TOPLABEL = re.compile(r"^(?:[a-z0-9]*[a-z][a-z0-9]*|[a-z0-9]+-[a-z0-9-]*[a-z0-9])$", re.I)


class MacroError(ValueError):
    """A macro-string that does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class Macro:
    letter: str  # lowercase
    digits: int | None
    reverse: bool
    delimiters: str
    escape: bool  # written uppercase: URL-escape the value


Part = str | Macro


def parse_macro_string(text: str, *, explanation: bool = False) -> tuple[Part, ...]:
    """Literal text and macros; raises MacroError. In explanation text any visible
    character and space is a literal; elsewhere only visible ASCII is."""
    parts: list[Part] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            if not (0x21 <= ord(char) <= 0x7E or (explanation and char == " ")):
                raise MacroError(f"character {char!r} is not allowed")
            literal.append(char)
            index += 1
            continue
        escape = _ESCAPES.get(text[index : index + 2])
        if escape is not None:
            literal.append(escape)
            index += 2
            continue
        match = _MACRO.match(text, index)
        if match is None:
            raise MacroError(f"bad macro at {text[index : index + 6]!r}")
        letter, digits, reverse, delimiters = match.groups()
        if letter.lower() not in _LETTERS:
            raise MacroError(f"unknown macro letter {letter!r}")
        if letter.lower() in _EXPLANATION_ONLY and not explanation:
            raise MacroError(f"the {letter} macro is allowed in explanations only")
        if digits and int(digits) == 0:
            raise MacroError("a macro keeps at least one part")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(
            Macro(
                letter.lower(),
                int(digits) if digits else None,
                bool(reverse),
                delimiters or ".",
                letter.isupper(),
            )
        )
        index = match.end()
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def parse_domain_spec(text: str) -> tuple[Part, ...]:
    """A domain-spec: a macro-string ending in a macro or in ``.toplabel`` (a final dot
    allowed); raises MacroError."""
    if not text:
        raise MacroError("empty domain")
    parts = parse_macro_string(text)
    last = parts[-1]
    if isinstance(last, Macro):
        return parts
    tail = last[:-1] if last.endswith(".") else last
    head, dot, toplabel = tail.rpartition(".")
    if not dot or not _TOPLABEL.match(toplabel) or (not head and len(parts) == 1):
        raise MacroError(f"{text!r} does not end in a top-level domain label")
    return parts


@dataclass
class MacroContext:
    """What the macros of one check expand to. ``validated`` finds the %{p} name
    (section 7.3: a validated PTR name of the client, or "unknown"), asked only if used."""

    sender: str  # local-part@domain
    domain: str  # the current domain (changes through include and redirect)
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str
    receiver: str
    validated: Callable[[str], Awaitable[str]]  # %{p} for the current domain

    @property
    def local(self) -> str:
        return self.sender.rpartition("@")[0]

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]


async def expand(parts: tuple[Part, ...], context: MacroContext, *, domain: bool = True) -> str:
    """The text of a parsed macro-string; a domain (``domain``) keeps no final dot and is
    cut to 253 characters by dropping labels on the left (section 7.3)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(await _value(part, context))
    text = "".join(out)
    if not domain:
        return text
    if text.endswith("."):
        text = text[:-1]
    while len(text) > MAX_DOMAIN and "." in text:
        text = text.partition(".")[2]
    return text


async def _value(macro: Macro, context: MacroContext) -> str:
    letter = macro.letter
    ip = context.ip
    if letter == "s":
        value = context.sender
    elif letter == "l":
        value = context.local
    elif letter == "o":
        value = context.sender_domain
    elif letter == "d":
        value = context.domain
    elif letter == "i":
        value = dotted(ip)
    elif letter == "c":
        value = str(ip)
    elif letter == "v":
        value = "in-addr" if ip.version == 4 else "ip6"
    elif letter == "h":
        value = context.helo
    elif letter == "r":
        value = context.receiver or "unknown"
    elif letter == "t":
        value = str(int(time.time()))
    else:  # "p"
        value = await context.validated(context.domain)
    if macro.digits is not None or macro.reverse or macro.delimiters != ".":
        pieces = re.split("[" + re.escape(macro.delimiters) + "]", value)
        if macro.reverse:
            pieces.reverse()
        if macro.digits is not None:
            pieces = pieces[-macro.digits :]
        value = ".".join(pieces)
    if macro.escape:
        value = urllib.parse.quote(value, safe="")
    return value


def dotted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """%{i}: IPv4 as it is written; IPv6 as 32 dot-separated nibbles (section 7.3), in
    uppercase hexadecimal as the OpenSPF suite and pyspf have it (DNS ignores the case)."""
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", "").upper())
