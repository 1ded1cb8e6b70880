"""MIME structure of a message, parsed once at delivery and cached for IMAP.

``parse_message(data)`` gives the ENVELOPE, the BODYSTRUCTURE tree and the byte offsets of
every part's header block and body, so ``BODY[1.2]``, ``BODY[1.2.HEADER]``, ``BODY[1.MIME]``,
``BODY[TEXT]``, ``BINARY[...]``, ``BODYSTRUCTURE`` and ``ENVELOPE`` are slices and lookups,
never a second parse. Pure functions over ``bytes``; no I/O. The rules it follows:

Header and body (RFC 5322 section 2.1-2.2)
    A header block is field lines (``name:`` value) and continuation lines (starting with
    a space or tab: folding), up to the first empty line, which is part of the block
    (``header_length`` counts it). A line that is neither ends the block without an empty
    line and the body starts there; so does the end of the data (header-only message).
    Line breaks are CRLF, bare LF, or a mix. Values are unfolded (the CRLF before the
    space is removed) and stripped. Header bytes are decoded as UTF-8 (RFC 6532), invalid
    sequences as U+FFFD (see ``headers``); the first occurrence of a field wins.

Content-Type and defaults (RFC 2045 section 5, RFC 2046, RFC 2231)
    Type and subtype are lowercased, parameters are unquoted, names lowercased and RFC 2231
    continuations (``name*0*=``) and charset-encoded values (``name*=utf-8''%E2%82%AC``)
    decoded. No Content-Type means ``text/plain; charset=us-ascii``, except in a
    multipart/digest, where it means ``message/rfc822``; one without a valid
    ``type/subtype`` also means text/plain. No Content-Transfer-Encoding means ``7bit``.

Multipart (RFC 2046 section 5.1.1)
    A delimiter line is ``--boundary`` at the start of a line, then optional spaces/tabs
    (transport padding) before the line break; ``--boundary--`` closes. The line break
    before a delimiter belongs to it, so a part's body ends before that CRLF (or LF). The
    preamble and epilogue are in the multipart's own body but are not parts. A missing
    close delimiter ends the last part at the end of the enclosing body. Boundaries are
    searched only within the enclosing body, so a broken inner multipart cannot swallow its
    parent's delimiters. A multipart that yields no part (no ``boundary`` parameter, no
    delimiter line, nesting or part limit reached) is one opaque leaf of the RFC 2045 default
    type ``text/plain`` (keeping its other parameters), so ``type == "multipart"`` always
    comes with at least one child, as BODYSTRUCTURE requires.

Encapsulated messages (RFC 2046 section 5.2.1, RFC 6532 section 3.7)
    The body of a ``message/rfc822`` or ``message/global`` part is parsed as a message
    (``BodyPart.message``) in place, when its encoding is 7bit, 8bit or binary as RFC 2046
    requires; an encoded one is an opaque ``text/plain`` leaf (its bytes are unchanged).

IMAP (RFC 9051 sections 6.4.5 and 7.5.2)
    ``size`` is the octets of the body as stored, ``lines`` its lines (line feeds, plus one
    for a last line without one) for text/* and message/rfc822. ENVELOPE strings are raw
    (encoded words not decoded); Sender and Reply-To default to From. ``find_part`` follows
    IMAP part numbering. ``decode_header_value`` is the RFC 2047 decoder for SEARCH and
    Sieve.

Limits: ``MAX_DEPTH`` levels of nesting, ``MAX_PARTS`` parts, ``MAX_ADDRESSES`` addresses per
field and the first ``MAX_HEADER_SCAN`` bytes of a header block are read. The cost is linear
in the message size per nesting level; the body is never copied.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stalwart_py.mime.charsets import decode_header_value
from stalwart_py.mime.headers import MAX_HEADER_SCAN, date_now
from stalwart_py.mime.model import BodyPart, Envelope, EnvelopeAddress, ParsedMessage, find_part

if TYPE_CHECKING:
    from stalwart_py.mime.addresses import MAX_ADDRESSES, parse_address_list
    from stalwart_py.mime.parser import MAX_DEPTH, MAX_PARTS, parse_message, split_multipart
    from stalwart_py.mime.serialize import from_json, to_json

# The parser, the address grammar (a few dozen regular expressions) and the JSON form load
# with the first message parsed, not at every start: the server imports this package for
# ``date_now`` and the store's sort fields long before it parses anything.
_LAZY = {
    "MAX_ADDRESSES": "addresses",
    "parse_address_list": "addresses",
    "MAX_DEPTH": "parser",
    "MAX_PARTS": "parser",
    "parse_message": "parser",
    "split_multipart": "parser",
    "from_json": "serialize",
    "to_json": "serialize",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value


__all__ = [
    "MAX_ADDRESSES",
    "MAX_DEPTH",
    "MAX_HEADER_SCAN",
    "MAX_PARTS",
    "BodyPart",
    "Envelope",
    "EnvelopeAddress",
    "ParsedMessage",
    "date_now",
    "decode_header_value",
    "find_part",
    "from_json",
    "parse_address_list",
    "parse_message",
    "split_multipart",
    "to_json",
]
