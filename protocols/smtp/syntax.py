"""SMTP command syntax: command lines, paths and ESMTP parameters. Pure functions, no I/O.

Command lines (RFC 5321 4.1.1, 4.5.3.1.4): a verb, a space and arguments, ended by CRLF
(a bare LF is accepted as the end of a command line; a bare CR inside one is not), at most
512 octets with the CRLF. Extensions make some lines longer: MAIL and RCPT carry ESMTP
parameters (RFC 3461 adds 100 octets to MAIL and 500 to RCPT, RFC 4954 500 more to MAIL for
``AUTH=``), and an AUTH line with its initial response may be 12,288 octets (RFC 4954 4).

Paths (RFC 5321 4.1.2, RFC 6531 3.3)::

    Path         = "<" [ A-d-l ":" ] Mailbox ">"      source route: accepted and ignored
    Mailbox      = Local-part "@" ( Domain / address-literal )
    Local-part   = Dot-string / Quoted-string          UTF-8 allowed with SMTPUTF8
    Domain       = sub-domain *("." sub-domain)        U-labels allowed with SMTPUTF8

``"abc"@x`` and ``abc@x`` are the same mailbox (RFC 5321 4.1.2), so a quoted local part that
needs no quotes is unquoted; one that does is kept in its minimal quoted form. Domains are
lowercased and turned into their ASCII (A-label) form for lookups. ``<Postmaster>`` with no
domain is a valid recipient (RFC 5321 4.5.1). Limits (RFC 5321 4.5.3.1): local part 64
octets, domain 255, path 256.

ESMTP parameters (RFC 5321 4.1.2): ``keyword["=" value]``, separated by spaces, keywords
case-insensitive. ``xtext`` (RFC 3461 4) encodes ``+`` HEX HEX.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from protocols.smtp.replies import Reply, reply
from stalwart_py import names

COMMAND_LIMIT = 512  # RFC 5321 4.5.3.1.4, with the CRLF
PARAMETER_LIMIT = 512 + 100 + 500 + 26 + 64  # MAIL/RCPT with DSN, AUTH=, SIZE, BODY, SMTPUTF8
AUTH_LIMIT = 12288  # RFC 4954 4: an AUTH command line, or a SASL response line
LINE_LIMIT = AUTH_LIMIT  # what is read before the verb is known
LOCAL_PART_LIMIT = 64
DOMAIN_LIMIT = 255
PATH_LIMIT = 256


class CommandError(Exception):
    """The client's command is malformed; ``reply`` says how, to the client."""

    def __init__(self, answer: Reply) -> None:
        super().__init__(str(answer))
        self.reply = answer


@dataclass(frozen=True, slots=True)
class Command:
    verb: str  # upper case
    argument: str  # the rest of the line after one space, without the line end


_VERB = re.compile(r"[A-Za-z]{1,16}")


def parse_command(line: bytes) -> Command:
    """Split a command line (with its line end) into verb and argument."""
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(reply(500, "5.5.2", "Command is not valid UTF-8")) from None
    if "\r" in text or "\n" in text or "\0" in text:
        raise CommandError(reply(500, "5.5.2", "Syntax error, bare CR or NUL in command"))
    verb, _, argument = text.partition(" ")
    if not _VERB.fullmatch(verb):
        raise CommandError(reply(500, "5.5.2", "Syntax error, command unrecognized"))
    verb = verb.upper()
    limit = AUTH_LIMIT if verb == "AUTH" else PARAMETER_LIMIT if verb in ("MAIL", "RCPT") else 0
    if len(line) + 2 > (limit or COMMAND_LIMIT):
        raise CommandError(reply(500, "5.5.2", "Line too long"))
    return Command(verb, argument)


# -- paths ----------------------------------------------------------------------------------

_UTF8_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
_DOT_STRING = re.compile(rf"[{_UTF8_ATEXT}]+(?:\.[{_UTF8_ATEXT}]+)*")
_QUOTED = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*)"')
_LABEL = re.compile(r"(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)")
_ROUTE = re.compile(r"@[^,:]+(?:,@[^,:]+)*:")


@dataclass(frozen=True, slots=True)
class Mailbox:
    local: str  # unquoted when it needs no quotes; else its minimal quoted form
    domain: str  # lowercase ASCII (A-labels), or "[address literal]"; "" for <Postmaster>
    utf8: bool = False  # written with non-ASCII characters: needs SMTPUTF8 (RFC 6531 3.4)

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local


def parse_path(text: str, *, sender: bool) -> tuple[Mailbox | None, str]:
    """Parse ``<path>`` at the start of ``text``; return (mailbox, the rest after ``>``).

    The mailbox is None for the null reverse-path ``<>`` (only when ``sender``).
    """
    bad = reply(501, "5.1.7" if sender else "5.1.3", "Bad address syntax")
    if not text.startswith("<"):
        raise CommandError(reply(501, bad.enhanced, "Address must be in angle brackets"))
    end = _path_end(text)
    if end < 0:
        raise CommandError(bad)
    inner, rest = text[1:end], text[end + 1 :]
    if len(inner.encode()) + 2 > PATH_LIMIT:
        raise CommandError(reply(501, bad.enhanced, "Path too long"))
    if inner == "":
        if sender:
            return None, rest
        raise CommandError(bad)
    if inner.startswith("@"):
        route = _ROUTE.match(inner)
        if route is None:
            raise CommandError(bad)
        inner = inner[route.end() :]
    if not sender and inner.lower() == "postmaster":
        return Mailbox("postmaster", ""), rest
    return parse_mailbox(inner, bad), rest


def _path_end(text: str) -> int:
    """The index of the ``>`` closing the path, skipping quoted strings."""
    index, quoted = 1, False
    while index < len(text):
        char = text[index]
        if quoted and char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
        index += 1
    return -1


def parse_mailbox(text: str, bad: Reply) -> Mailbox:
    at = text.rfind("@")
    if at <= 0:
        raise CommandError(bad)
    local_text, domain_text = text[:at], text[at + 1 :]
    if _DOT_STRING.fullmatch(local_text):
        local = local_text
    elif match := _QUOTED.fullmatch(local_text):
        local = _canonical_quoted(re.sub(r"\\(.)", r"\1", match.group(1)))
    else:
        raise CommandError(bad)
    if len(local.encode()) > LOCAL_PART_LIMIT:
        raise CommandError(reply(501, bad.enhanced, "Local part too long"))
    return Mailbox(local, parse_domain(domain_text, bad), not text.isascii())


def _canonical_quoted(content: str) -> str:
    if content and _DOT_STRING.fullmatch(content):
        return content
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_domain(text: str, bad: Reply) -> str:
    """A domain (lowercased, IDNs as A-labels) or an address literal, else CommandError.

    The domain is checked and converted by the core's ``names.domain`` (IDNA 2008), the one
    the directory stores local domains with, so that a lookup finds what was stored."""
    if text.startswith("[") and text.endswith("]"):
        return "[" + _address_literal(text[1:-1], bad) + "]"
    if len(text.encode()) > DOMAIN_LIMIT:
        raise CommandError(reply(501, bad.enhanced, "Domain too long"))
    labels = text.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise CommandError(bad)
    try:
        return names.domain(text)
    except names.InvalidName:
        if text.isascii():
            raise CommandError(bad) from None
        raise CommandError(reply(501, bad.enhanced, "Invalid internationalized domain")) from None


def _address_literal(text: str, bad: Reply) -> str:
    try:
        if text[:5].lower() == "ipv6:":
            return "IPv6:" + str(ipaddress.IPv6Address(text[5:]))
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise CommandError(bad) from None


def parse_helo_domain(text: str) -> str:
    """The EHLO/HELO argument: a domain or an address literal (RFC 5321 4.1.1.1). Clients
    get this wrong often enough (bare IPs, underscores) that anything printable is taken."""
    text = text.strip()
    if not text or " " in text or not text.isprintable():
        raise CommandError(reply(501, "5.5.4", "Syntax: EHLO domain or address literal"))
    if len(text.encode()) > DOMAIN_LIMIT:
        raise CommandError(reply(501, "5.5.4", "Domain too long"))
    return text


# -- ESMTP parameters -----------------------------------------------------------------------

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")


def decimal(text: str, max_digits: int) -> int | None:
    """A number of at most ``max_digits`` ASCII digits (RFC 5234 DIGIT), or None. Commands
    are UTF-8, and ``str.isdigit`` also takes "²", which ``int`` refuses."""
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)


def parse_parameters(text: str) -> dict[str, str | None]:
    """``KEY=value KEY2`` -> {"KEY": "value", "KEY2": None}; duplicates are an error."""
    params: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            continue
        keyword, sep, value = item.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (sep and not _VALUE.fullmatch(value)):
            raise CommandError(reply(501, "5.5.4", f"Invalid parameter syntax: {item[:40]}"))
        keyword = keyword.upper()
        if keyword in params:
            raise CommandError(reply(501, "5.5.4", f"Duplicate parameter {keyword}"))
        params[keyword] = value if sep else None
    return params


def decode_xtext(text: str) -> str:
    """RFC 3461 4: ``+`` HEX HEX stands for one octet; the result is UTF-8 text."""
    if not _XTEXT.fullmatch(text):
        raise CommandError(reply(501, "5.5.4", "Invalid xtext"))
    octets = re.sub(rb"\+([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(reply(501, "5.5.4", "Invalid xtext")) from None


@dataclass(frozen=True, slots=True)
class MailParameters:
    size: int | None = None  # RFC 1870
    body: str | None = None  # 7BIT or 8BITMIME (RFC 6152)
    smtputf8: bool = False  # RFC 6531
    ret: str | None = None  # RFC 3461: FULL or HDRS
    envid: str | None = None  # RFC 3461, decoded
    auth: str | None = None  # RFC 4954 5, decoded; "<>" when the submitter is unknown


@dataclass(frozen=True, slots=True)
class RcptParameters:
    notify: tuple[str, ...] = ()  # RFC 3461: NEVER, or SUCCESS/FAILURE/DELAY
    orcpt: str | None = None  # RFC 3461: "rfc822;addr", decoded


def unsupported(keyword: str) -> CommandError:
    # RFC 5321 4.1.1.11: an unrecognized parameter gets 555.
    return CommandError(reply(555, "5.5.4", f"Unsupported parameter {keyword}"))


def mail_parameters(text: str) -> MailParameters:
    params = parse_parameters(text)
    values: dict[str, object] = {}
    for keyword, value in params.items():
        if keyword == "SIZE":
            size = decimal(value or "", 20)
            if size is None:
                raise CommandError(reply(501, "5.5.4", "SIZE needs a number"))
            values["size"] = size
        elif keyword == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise CommandError(reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME"))
            values["body"] = value.upper()
        elif keyword == "SMTPUTF8":
            if value is not None:
                raise CommandError(reply(501, "5.5.4", "SMTPUTF8 takes no value"))
            values["smtputf8"] = True
        elif keyword == "RET":
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise CommandError(reply(501, "5.5.4", "RET must be FULL or HDRS"))
            values["ret"] = value.upper()
        elif keyword == "ENVID":
            envid = decode_xtext(value or "")
            if not envid or len(envid) > 100:
                raise CommandError(reply(501, "5.5.4", "ENVID must be 1 to 100 characters"))
            values["envid"] = envid
        elif keyword == "AUTH":
            values["auth"] = decode_xtext(value or "")
        else:
            raise unsupported(keyword)
    return MailParameters(**values)  # type: ignore[arg-type]


NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def rcpt_parameters(text: str) -> RcptParameters:
    params = parse_parameters(text)
    notify: tuple[str, ...] = ()
    orcpt = None
    for keyword, value in params.items():
        if keyword == "NOTIFY":
            items = tuple(v.upper() for v in (value or "").split(","))
            if items != ("NEVER",) and not (items and set(items) <= NOTIFY_VALUES):
                raise CommandError(
                    reply(501, "5.5.4", "NOTIFY must be NEVER or SUCCESS, FAILURE, DELAY")
                )
            notify = tuple(dict.fromkeys(items))
        elif keyword == "ORCPT":
            kind, sep, address = (value or "").partition(";")
            if not sep or not _KEYWORD.fullmatch(kind) or not address:
                raise CommandError(reply(501, "5.5.4", "ORCPT must be addr-type;xtext"))
            orcpt = f"{kind.lower()};{decode_xtext(address)}"
            if len(orcpt) > 500:
                raise CommandError(reply(501, "5.5.4", "ORCPT too long"))
        else:
            raise unsupported(keyword)
    return RcptParameters(notify, orcpt)
