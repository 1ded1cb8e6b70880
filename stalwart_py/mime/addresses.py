"""RFC 5322 address lists (section 3.4, with the obsolete forms of 4.4) as IMAP ENVELOPE
addresses, and the ENVELOPE itself (RFC 9051 section 7.5.2).

A lenient recursive-descent over a small tokenizer: quoted strings, nested comments, domain
literals, the specials ``< > @ , ; :`` and atoms (dots included). It never raises; junk is
skipped. Choices:

* ``name`` is the display phrase with quotes removed and quoted pairs unescaped, words
  joined by one space; encoded words are left encoded. Without a phrase, a comment next to
  the address is the name (``a@b (Ann)``), as most servers do.
* ``mailbox`` is the local part in canonical form: quoted only when it is not a dot-atom
  (``"a b"@x`` stays quoted, ``"ab"@x`` becomes ``ab``), so ``mailbox@host`` is valid.
* A missing domain is ``host=""``: IMAP reserves a NIL host for group markers.
* ``route`` is the obsolete source route without its colon (``@a,@b``).
* At most ``MAX_ADDRESSES`` addresses are kept per field, read from at most its first
  ``MAX_ADDRESS_CHARS`` characters (cut back to the last comma).
"""

from __future__ import annotations

import re

from stalwart_py.mime.model import AddressList, Envelope, EnvelopeAddress

MAX_ADDRESSES = 1000
MAX_ADDRESS_CHARS = 128 * MAX_ADDRESSES

_TOKEN = re.compile(
    r'[ \t\r\n]+|"((?:[^"\\]|\\.)*+)(?:"|\\?\Z)|(\[(?:[^\]\\]|\\.)*+(?:\]|\\?\Z))'
    r'|([<>@,;:])|([^\s"(),:;<>@\[\]]+)|(.)',
    re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\x80-\U0010ffff]++"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")

# The commonest field by far, one plain address alone (``<a@b.example>`` or ``a@b.example``),
# parsed without tokenizing. Its characters are all atom characters of ``_TOKEN``, so the
# general path would read the same two atoms; anything else (a name, a comment, a quoted or
# non-ASCII local part, several addresses) goes the general way. The angle brackets must
# pair (group 1 and 4); the local part must be a dot-atom (checked after the match).
_PLAIN_ADDRESS = re.compile(
    r"[ \t]*+(<?)([A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]++)@([A-Za-z0-9.\-]++)(>?)[ \t]*+\Z"
)

# token kinds; the specials are their own character
ATOM, QUOTED, LITERAL, COMMENT = "a", "q", "l", "c"
_WORDS = (ATOM, QUOTED)
_GROUP_END = EnvelopeAddress(None, None, None, None)

Token = tuple[str, str]


def tokenize(value: str) -> list[Token]:
    tokens: list[Token] = []
    position, length = 0, len(value)
    while position < length:
        if value[position] == "(":
            position = _comment(value, position, tokens)
            continue
        match = _TOKEN.match(value, position)
        if match is None:  # pragma: no cover - the pattern matches any character
            break
        position = match.end()
        quoted, literal, special, atom, _ = match.groups()
        if quoted is not None:
            tokens.append((QUOTED, _QUOTED_PAIR.sub(r"\1", quoted)))
        elif literal is not None:
            tokens.append((LITERAL, literal))
        elif special is not None:
            tokens.append((special, special))
        elif atom is not None:
            tokens.append((ATOM, atom))
    return tokens


def _comment(value: str, position: int, tokens: list[Token]) -> int:
    """Append one (possibly nested) comment's text; return the position after it."""
    depth, index, text = 0, position, []
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            text.append(value[index + 1])
            index += 2
            continue
        if char == "(":
            depth += 1
            if depth > 1:
                text.append(char)
        elif char == ")":
            depth -= 1
            if depth == 0:
                index += 1
                break
            text.append(char)
        else:
            text.append(char)
        index += 1
    tokens.append((COMMENT, " ".join("".join(text).split())))
    return index


def parse_address_list(value: str | None) -> AddressList | None:
    """The addresses (and group markers) of an address-list field; None when the field is
    absent or holds no address."""
    if value is None:
        return None
    plain = _PLAIN_ADDRESS.match(value)
    if plain is not None:
        opened, local, domain, closed = plain.groups()
        if opened == ("<" if closed else "") and _DOT_ATOM.match(local):
            return (EnvelopeAddress(None, None, local, domain),)
    if len(value) > MAX_ADDRESS_CHARS:
        value = value[:MAX_ADDRESS_CHARS]
        value = value[: value.rfind(",") + 1] or value
    tokens = tokenize(value)
    out: list[EnvelopeAddress] = []
    in_group = False
    index, count = 0, len(tokens)
    while index < count and len(out) < MAX_ADDRESSES:
        stop = index
        while stop < count and tokens[stop][0] not in "<:,;":
            stop += 1
        run = tokens[index:stop]
        kind = tokens[stop][0] if stop < count else ""
        if kind == ":":
            if in_group:
                out.append(_GROUP_END)
            out.append(EnvelopeAddress(None, None, _phrase(run) or "", None))
            in_group = True
            index = stop + 1
        elif kind == "<":
            inner_end, index = _angle_end(tokens, stop + 1)
            out.append(_angle_address(run, tokens[stop + 1 : inner_end]))
            while index < count and tokens[index][0] not in ",;":
                index += 1  # junk after "<...>": skip it
        else:
            if any(token[0] != COMMENT for token in run):
                out.append(_bare_address(run))
            if kind == ";" and in_group:
                out.append(_GROUP_END)
                in_group = False
            index = stop + 1
    if in_group:
        out.append(_GROUP_END)
    return tuple(out) or None


def _angle_end(tokens: list[Token], index: int) -> tuple[int, int]:
    """(end of the inside, where the list goes on) of an angle address opened just before
    ``index``. An unclosed one ends at the next list separator, except within a route."""
    in_route = index < len(tokens) and tokens[index][0] == "@"
    while index < len(tokens):
        kind = tokens[index][0]
        if kind == ">":
            return index, index + 1
        if kind == ":":
            in_route = False
        elif kind in ",;" and not in_route:
            return index, index
        index += 1
    return index, index


def _angle_address(phrase: list[Token], inner: list[Token]) -> EnvelopeAddress:
    route = None
    if inner and inner[0][0] == "@":
        colon = next((i for i, token in enumerate(inner) if token[0] == ":"), len(inner))
        route = "".join(text for kind, text in inner[:colon] if kind != COMMENT) or None
        inner = inner[colon + 1 :]
    mailbox, host = _addr_spec(inner)
    name = _phrase(phrase) or _last_comment(phrase) or _last_comment(inner)
    return EnvelopeAddress(name, route, mailbox, host)


def _bare_address(run: list[Token]) -> EnvelopeAddress:
    mailbox, host = _addr_spec(run)
    return EnvelopeAddress(_last_comment(run), None, mailbox, host)


def _addr_spec(tokens: list[Token]) -> tuple[str, str]:
    words = [token for token in tokens if token[0] not in (COMMENT, ">", "<")]
    at = max((i for i, token in enumerate(words) if token[0] == "@"), default=-1)
    local_tokens, domain_tokens = (words[:at], words[at + 1 :]) if at >= 0 else (words, [])
    domain = "".join(text for _, text in domain_tokens)
    return _local_part(local_tokens), domain


def _local_part(tokens: list[Token]) -> str:
    pieces: list[str] = []
    for kind, text in tokens:
        if pieces and kind in _WORDS and pieces[-1][-1:] != "." and text[:1] != ".":
            pieces.append(" ")  # two words without a dot between: not a dot-atom
        pieces.append(text)
    local = "".join(pieces)
    if not local or _DOT_ATOM.match(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(tokens: list[Token]) -> str | None:
    pieces: list[str] = []
    previous = ""
    for kind, text in tokens:
        if kind == COMMENT:
            continue
        if pieces and kind in _WORDS and previous in _WORDS:
            pieces.append(" ")
        pieces.append(text)
        previous = kind
    return "".join(pieces) or None


def _last_comment(tokens: list[Token]) -> str | None:
    for kind, text in reversed(tokens):
        if kind == COMMENT and text:
            return text
    return None


def build_envelope(fields: dict[str, str]) -> Envelope:
    """The ENVELOPE from a message's header fields (lowercase names; first occurrence).
    Sender and Reply-To default to From when absent or empty (RFC 9051 section 7.5.2)."""
    from_ = parse_address_list(fields.get("from"))
    return Envelope(
        date=fields.get("date"),
        subject=fields.get("subject"),
        from_=from_,
        sender=parse_address_list(fields.get("sender")) or from_,
        reply_to=parse_address_list(fields.get("reply-to")) or from_,
        to=parse_address_list(fields.get("to")),
        cc=parse_address_list(fields.get("cc")),
        bcc=parse_address_list(fields.get("bcc")),
        in_reply_to=fields.get("in-reply-to"),
        message_id=fields.get("message-id"),
    )


ENVELOPE_FIELDS = frozenset(
    [
        "date",
        "subject",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "in-reply-to",
        "message-id",
    ]
)
