"""CATENATE (RFC 4469): a message built from literal text and IMAP URLs (RFC 5092) of
messages, or sections of messages, already in the same account.

The URL forms taken (keywords in any case, values percent-encoded)::

    imap://user@host[:port]/Mailbox[;UIDVALIDITY=n]/;UID=m[/;SECTION=s][/;PARTIAL=o[.l]]
    /Mailbox[;UIDVALIDITY=n]/;UID=m[/;SECTION=s][/;PARTIAL=o[.l]]     (absolute path)
    ;UID=m[/;SECTION=s][/;PARTIAL=o[.l]]       (relative: the selected mailbox, RFC 4469 5)

The section is a FETCH section (``HEADER``, ``1.2.MIME``, ``HEADER.FIELDS (From To)``...)
read by the FETCH grammar; the partial is ``offset[.length]`` (RFC 5092 section 3).

Anything the server cannot or will not resolve is ``NO [BADURL url]`` (RFC 4469 section
5): a URL of another account or another host, URLAUTH (not offered), a mailbox that does
not exist, a UIDVALIDITY that is not the mailbox's, a message that is not there. Sizes are
counted as the message is built: over the limit it stops at once with ``NO [TOOBIG]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_to_bytes

from protocols.imap.append_syntax import CatPart, TextPart
from protocols.imap.fetch_items import Section, _section
from protocols.imap.lexer import MAX_NUMBER, ParseError, Reader
from protocols.imap.replies import Bad, No
from protocols.imap.sections import apply_partial, section_bytes
from stalwart_py import mime
from stalwart_py.store import Mailbox

if TYPE_CHECKING:
    from protocols.imap.session import Session

# Blobs read from the store at a time while building: memory stays bounded by a batch.
READ_BATCH = 64
_SCHEME = re.compile(r"imap://", re.IGNORECASE)
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "]")
_PARAM = re.compile(r";([A-Za-z]+)=(.*)\Z", re.DOTALL)


class BadUrl(ValueError):
    """A URL part that does not name a message of this account."""


@dataclass(frozen=True, slots=True)
class ImapUrl:
    """A parsed IMAP URL that names a message or a part of one."""

    user: str | None  # the account it names (None: the session's)
    host: str | None  # None for a relative URL
    mailbox: bytes | None  # as the client would send it (None: the selected mailbox)
    uidvalidity: int | None
    uid: int
    section: Section | None
    partial: tuple[int, int] | None


def parse_url(url: str) -> ImapUrl:
    """An IMAP URL (RFC 5092) of a message; raises BadUrl."""
    user = host = None
    rest = url
    if _SCHEME.match(url):
        authority, slash, rest = url[len("imap://") :].partition("/")
        if not slash:
            raise BadUrl("no message in the URL")
        user, at, hostport = authority.rpartition("@")
        if not at:
            user = None
        elif ";" in user:
            user, _, auth = user.partition(";")
            if auth.upper() not in ("AUTH=*", "AUTH=PLAIN", "AUTH=SCRAM-SHA-256", "AUTH=LOGIN"):
                raise BadUrl("unsupported URL authentication")
        user = _text(user) if user else None
        host = _host(hostport)
        rest = "/" + rest
    mailbox = None
    uidvalidity = None
    if rest.startswith("/"):
        # "/Mailbox/Child;UIDVALIDITY=n/;UID=m/...": the name may hold the hierarchy
        # delimiter, so it ends at the first "/;".
        head, _, rest = rest[1:].partition("/;")
        rest = ";" + rest
        name, semi, param = head.partition(";")
        if not name:
            raise BadUrl("no mailbox in the URL")
        mailbox = unquote_to_bytes(name)
        if semi:
            uidvalidity = _param(";" + param, "UIDVALIDITY")
    segments = rest.split("/")
    params: dict[str, str] = {}
    for segment in segments:
        match = _PARAM.match(segment)
        if match is None:
            raise BadUrl("not a message URL")
        key = match.group(1).upper()
        if key not in ("UID", "SECTION", "PARTIAL") or key in params:
            raise BadUrl(f"unexpected ;{key}= in the URL")  # URLAUTH and EXPIRE too
        params[key] = match.group(2)
    if "UID" not in params:
        raise BadUrl("no ;UID= in the URL")
    uid = _number(params["UID"], nonzero=True)
    section = _parse_section(params["SECTION"]) if "SECTION" in params else None
    partial = _partial(params["PARTIAL"]) if "PARTIAL" in params else None
    return ImapUrl(user, host, mailbox, uidvalidity, uid, section, partial)


def _text(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("not UTF-8") from None


def _host(hostport: str) -> str:
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise BadUrl("bad host")
    else:
        host, _, port = hostport.partition(":")
        port = ":" + port if port else ""
    if port and not port[1:].isdigit():
        raise BadUrl("bad port")
    if not host:
        raise BadUrl("no host in the URL")
    return _text(host).lower()


def _param(text: str, key: str) -> int:
    match = _PARAM.match(text)
    if match is None or match.group(1).upper() != key:
        raise BadUrl(f"expected ;{key}=")
    return _number(match.group(2), nonzero=True)


def _number(text: str, *, nonzero: bool = False) -> int:
    if not text.isdigit() or len(text) > 10 or int(text) > MAX_NUMBER:
        raise BadUrl("bad number in the URL")
    value = int(text)
    if nonzero and value == 0:
        raise BadUrl("zero in the URL")
    return value


def _parse_section(text: str) -> Section:
    raw = unquote_to_bytes(text)
    reader = Reader(raw + b"]")
    reader.end = len(raw)  # the section ends where the FETCH grammar expects "]"
    try:
        section = _section(reader)
        reader.finish()
    except ParseError as error:
        raise BadUrl(f"bad section: {error}") from None
    if not section.part and section.text is None:
        raise BadUrl("empty section")
    return section


def _partial(text: str) -> tuple[int, int]:
    offset, dot, length = text.partition(".")
    start = _number(offset)
    count = _number(length, nonzero=True) if dot else MAX_NUMBER
    return start, count


# -- building the message ---------------------------------------------------------------------


def _same_account(session: Session, url: ImapUrl) -> bool:
    if url.user is not None and url.user.lower() != session.account.address.lower():
        return False
    if url.host is None:
        return True
    if url.host in (session.conn.server.hostname.lower(), "localhost"):
        return True
    try:
        return ipaddress.ip_address(url.host) == session.conn.local.ip
    except ValueError:
        return False


async def build(session: Session, parts: Sequence[CatPart], budget: int) -> bytes:
    """The message ``parts`` describe, at most ``budget`` octets (else ``NO [TOOBIG]``);
    a part that cannot be resolved is ``NO [BADURL url]``."""
    urls: list[tuple[str, ImapUrl] | None] = []
    for part in parts:
        if isinstance(part, TextPart):
            urls.append(None)
            continue
        try:
            parsed = parse_url(part.url)
        except BadUrl:
            raise _badurl(part.url) from None
        if not _same_account(session, parsed):
            raise _badurl(part.url)
        urls.append((part.url, parsed))
    messages = await _locate(session, [u for u in urls if u is not None])
    out = bytearray()
    blobs: dict[int, bytes] = {}
    for index, part in enumerate(parts):
        ref = urls[index]
        if ref is None:
            assert isinstance(part, TextPart)
            piece = part.data
        else:
            url, parsed = ref
            blob_id, structure = messages[url]
            if blob_id not in blobs:
                blobs.clear()  # only a batch is kept
                wanted = [messages[u[0]][0] for u in urls[index:] if u is not None][:READ_BATCH]
                blobs.update(await session.store.read_blobs(list(dict.fromkeys(wanted))))
                if blob_id not in blobs:
                    raise _badurl(url)
            piece = _piece(blobs[blob_id], structure, parsed)
        if len(out) + len(piece) > budget:
            raise No("The message is too big", "TOOBIG")
        out += piece
    return bytes(out)


def _piece(data: bytes, structure: str, url: ImapUrl) -> bytes:
    if url.section is not None:
        data = section_bytes(data, mime.from_json(structure), url.section)
    return apply_partial(data, url.partial)


async def _locate(session: Session, urls: list[tuple[str, ImapUrl]]) -> dict[str, tuple[int, str]]:
    """url -> (blob id, structure) for every URL part, with one store read per mailbox."""
    by_mailbox: dict[bytes | None, list[tuple[str, ImapUrl]]] = {}
    for url, parsed in urls:
        by_mailbox.setdefault(parsed.mailbox, []).append((url, parsed))
    located: dict[str, tuple[int, str]] = {}
    for raw, group in by_mailbox.items():
        mailbox = await _mailbox(session, raw, group[0][0])
        for url, parsed in group:
            if parsed.uidvalidity is not None and parsed.uidvalidity != mailbox.uidvalidity:
                raise _badurl(url)
        stored = await session.store.structures(mailbox.id, sorted({p.uid for _, p in group}))
        for url, parsed in group:
            found = stored.get(parsed.uid)
            if found is None:
                raise _badurl(url)
            located[url] = (found.info.blob_id, found.structure)
    return located


async def _mailbox(session: Session, raw: bytes | None, url: str) -> Mailbox:
    if raw is None:  # relative to the selected mailbox
        if session.view is None:
            raise _badurl(url)
        found = await session.store.get_mailbox_by_id(session.view.mailbox_id)
    else:
        try:
            name = session.decode(raw)
        except Bad:
            raise _badurl(url) from None
        found = await session.store.get_mailbox(session.account_id, name)
    if found is None:
        raise _badurl(url)
    return found


def _badurl(url: str) -> No:
    """``NO [BADURL url]``: RFC 4469 section 7 has the URL as text up to the "]" (not a
    quoted string; Dovecot answers the same), so "]" and what is not printable ASCII are
    percent-encoded."""
    return No("Bad URL", f"BADURL {quote(url, safe=_PRINTABLE)}")
