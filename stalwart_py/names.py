"""Names taken from clients: domain names and mailbox addresses, checked in one place for every
door they come in by (the CLI, the admin API, the store, and SMTP's paths).

A **domain name** (RFC 5321 4.1.2 ``Domain``, IDNA 2008: RFC 5890 and 5891, with the UTS #46
mapping that turns ``Bücher.Example`` into ``bücher.example`` first):

* labels of letters, digits and hyphens, not starting or ending with a hyphen, 1 to 63 octets
  (RFC 1035 2.3.1, RFC 1123 2.1); a label with other letters is an IDN U-label and is kept in
  its ASCII form, the A-label (``xn--bcher-kva``), which is what DNS and every lookup here use;
* at most 253 octets in all (255 on the wire, RFC 1035 3.1); lower case; one trailing dot (the
  root) is dropped;
* the last label is not all digits (RFC 3696 2), so ``192.0.2.1`` is not a domain name.

Anything else is refused, which keeps out every character that means something to a file
system, a shell, a log or a header (``/``, ``..``, NUL, CR, LF, spaces) whatever the IDNA
library maps.

A **mailbox** (RFC 5321 4.1.2 ``Mailbox``, with RFC 6531 3.3's UTF-8) is ``local@domain``:

* the local part is a ``Dot-string`` (atoms of ``atext`` joined by single dots) or a
  ``Quoted-string`` (printable ASCII, with ``\\"`` and ``\\\\`` as quoted pairs), of at most 64
  octets in UTF-8 (RFC 5321 4.5.3.1.1). It is kept in its canonical form, unquoted when it
  needs no quotes (``"ab"@x`` is ``ab@x``, RFC 5321 4.1.2);
* beyond ASCII (RFC 6531 ``UTF8-non-ascii``), letters, marks, digits, punctuation and symbols
  are taken; control, format, separator, surrogate, private-use and unassigned code points are
  not: they print as nothing or move text around, and make an address that looks like another;
* the domain is a domain name as above, or, where ``literal`` is true (an envelope address,
  such as the injection API's), an address literal (RFC 5321 4.1.3: ``[192.0.2.1]``,
  ``[IPv6:2001:db8::1]``); a literal names no account or alias of a server, so it is refused
  by default;
* the address has at most 254 octets (the 256 of RFC 5321 4.5.3.1.3's path, less ``<>``).

An **alias** is a mailbox, or ``@domain`` for the catch-all of a domain.

Every function returns the canonical form or raises ``InvalidName`` (a ValueError) saying what
was expected.
"""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata

import idna

MAX_DOMAIN = 253
MAX_LABEL = 63
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
MAX_INPUT = 1024  # characters looked at, at most: mapping may shorten a name, never by more

_LDH_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# atext (RFC 5322 3.2.3), as RFC 5321 4.1.2 takes it
_ATEXT_ASCII = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
# qtextSMTP (RFC 5321 4.1.2): printable ASCII but '"' and '\'; quoted-pairSMTP: '\' and any
_QTEXT_ASCII = frozenset(chr(c) for c in range(32, 127)) - {'"', "\\"}
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


class InvalidName(ValueError):
    """Not a valid domain name or address; the message says what was expected."""


def _show(text: str) -> str:
    """The name as a message can quote it: escaped, and cut when long."""
    shown = repr(text[:80])
    return shown + "..." if len(text) > 80 else shown


def domain(text: str) -> str:
    """The canonical form of a domain name: lower case, A-labels, no trailing dot."""
    if not isinstance(text, str) or not text:
        raise InvalidName("a domain name is expected, such as example.com")
    if len(text) > MAX_INPUT:
        raise InvalidName(f"the domain name {_show(text)} is longer than {MAX_DOMAIN} characters")
    name = text[:-1] if text.endswith(".") else text
    if not name.isascii():
        try:
            # UTS #46 mapping, then IDNA 2008; std3_rules refuses what is not a letter, a digit
            # or a hyphen after mapping (a fullwidth solidus maps to "/": refused, not kept).
            name = idna.encode(name, uts46=True, std3_rules=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidName(f"{_show(text)} is not a valid domain name: {exc}") from None
    name = name.lower()
    if len(name) > MAX_DOMAIN:
        raise InvalidName(f"the domain name {_show(text)} is longer than {MAX_DOMAIN} characters")
    labels = name.split(".")
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            raise InvalidName(
                f"{_show(text)} is not a valid domain name: every label must be 1 to "
                f"{MAX_LABEL} letters, digits or hyphens, not starting or ending with a hyphen"
            )
        if label.startswith("xn--"):
            try:  # an A-label must be the encoding of a valid U-label (RFC 5891 5.4)
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidName(f"{_show(text)}: {label} is not a valid A-label: {exc}") from None
    if labels[-1].isdigit():
        raise InvalidName(f"{_show(text)} is not a domain name: its last label is all digits")
    return name


def _allowed_beyond_ascii(char: str) -> bool:
    return unicodedata.category(char) not in _REFUSED_CATEGORIES


def local_part(text: str) -> str:
    """The canonical form of a local part: unquoted when it is a dot-string, else quoted with
    only the quoted pairs it needs."""
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        content = _unquote(text[1:-1], text)
        if not content:
            raise InvalidName("the local part is empty")
    else:
        _check_dot_string(text, text)
        content = text
    canonical = content if _is_dot_string(content) else _quote(content)
    if len(canonical.encode("utf-8", "surrogatepass")) > MAX_LOCAL_PART:
        raise InvalidName(f"the local part {_show(text)} is longer than {MAX_LOCAL_PART} octets")
    return canonical


def _is_dot_string(text: str) -> bool:
    try:
        _check_dot_string(text, text)
    except InvalidName:
        return False
    return True


def _check_dot_string(text: str, whole: str) -> None:
    if not text:
        raise InvalidName("the local part is empty")
    for atom in text.split("."):
        if not atom:
            raise InvalidName(
                f"the local part {_show(whole)} has a dot at its start or end, or two in a row"
            )
        for char in atom:
            if char in _ATEXT_ASCII or (not char.isascii() and _allowed_beyond_ascii(char)):
                continue
            raise InvalidName(
                f"the local part {_show(whole)} has {_show(char)}: expected letters, digits, "
                f"!#$%&'*+-/=?^_`{{|}}~ and dots, or a quoted string"
            )


def _unquote(content: str, whole: str) -> str:
    out = []
    chars = iter(content)
    for char in chars:
        if char == "\\":
            pair = next(chars, "")
            if not (pair and " " <= pair <= "~"):
                raise InvalidName(
                    f"the quoted local part {_show(whole)} has a backslash that is not followed "
                    "by a printable ASCII character"
                )
            out.append(pair)
        elif char in _QTEXT_ASCII or (not char.isascii() and _allowed_beyond_ascii(char)):
            out.append(char)
        else:
            raise InvalidName(
                f"the quoted local part {_show(whole)} has {_show(char)}: a quoted string holds "
                'printable characters, with \\" and \\\\ for a quote and a backslash'
            )
    return "".join(out)


def _quote(content: str) -> str:
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox(text: str, *, literal: bool = False) -> str:
    """The canonical form of an address ``local@domain`` (see the module's docstring)."""
    if not isinstance(text, str) or "@" not in text:
        raise InvalidName(f"{_show(str(text))} is not an address: expected local@domain")
    if len(text) > MAX_INPUT:
        raise InvalidName(f"{_show(text)} is longer than {MAX_ADDRESS} octets")
    local, _, host = text.rpartition("@")
    if host.startswith("["):
        if not literal:
            raise InvalidName(f"{_show(text)}: an address literal names no mailbox here")
        host = address_literal(host)
    else:
        host = domain(host)
    canonical = f"{local_part(local)}@{host}"
    if len(canonical.encode("utf-8")) > MAX_ADDRESS:
        raise InvalidName(f"{_show(text)} is longer than {MAX_ADDRESS} octets")
    return canonical


def address_literal(text: str) -> str:
    """``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 4.1.3), in canonical form."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else ""
    try:
        if inner[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:])}]"
        return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        raise InvalidName(
            f"{_show(text)} is not an address literal: expected [192.0.2.1] or [IPv6:2001:db8::1]"
        ) from None


def alias(text: str) -> str:
    """The canonical form of an alias: a mailbox, or ``@domain`` for a catch-all."""
    if isinstance(text, str) and text.startswith("@"):
        return "@" + domain(text[1:])
    return mailbox(text)
