"""FETCH against Dovecot: BODYSTRUCTURE, ENVELOPE, and BODY, BINARY and BINARY.SIZE of
every part of every message of the MIME corpus (tests/integration/mime_corpus.py)."""

from __future__ import annotations

from itertools import takewhile
from typing import Any

import pytest

from tests.integration.imap_support import Raw
from tests.integration.mime_corpus import CORPUS
from tests.interop.differential import (
    BROKEN_MIME_REASON,
    HIGHESTMODSEQ_ALWAYS,
    LAST_LINE_COUNTS,
    RFC2231_DECODED,
    Deliberate,
    Message,
    Step,
    append_all,
    compare,
    parse,
)
from tests.support.dovecot import Dovecot
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop

MAILBOX = "Fetch"
DATE = "03-Jan-2024 10:30:00 +0000"  # Maildir keeps no zone: UTC, so both keep it as given

DELIBERATE = (
    HIGHESTMODSEQ_ALWAYS,
    Deliberate(
        r"ENVELOPE",
        r"^(2 FETCH .*ENVELOPE=)\(.*?\)( FLAGS=|$)",
        "Message 2 has raw UTF-8 header fields (RFC 6532). A session that did not ENABLE "
        "UTF8=ACCEPT gets them in ENVELOPE as RFC 2047 encoded words (RFC 6855 section 3); "
        "Dovecot 2.3, without UTF8=ACCEPT, sends the 8-bit octets. The enabled session is "
        "compared in test_dovecot_differential_append.py.",
        replace=r"\1(8-bit, compared apart)\2",
    ),
    LAST_LINE_COUNTS,
    RFC2231_DECODED,
    # messages 4 and 5 of the corpus: a multipart without a boundary, a garbage
    # Content-Type with an unknown encoding and an address that does not parse
    Deliberate(r"^FETCH (1:\*|[45]) ", r"^[45] FETCH .*(BODY|ENVELOPE)", BROKEN_MIME_REASON),
    Deliberate(r"^FETCH [45] ", r"", BROKEN_MIME_REASON),
    Deliberate(
        r"^FETCH 1 \(?BODY\.PEEK\[1\]",
        r'--alt--\r\n"',
        "The body of a multipart part ends before the CRLF that precedes the enclosing "
        "multipart's next delimiter (RFC 2046 5.1.1: that CRLF belongs to the delimiter); "
        "Dovecot includes it.",
        replace='--alt--"',
    ),
    Deliberate(
        r"^FETCH [13] \(?BINARY(\.PEEK|\.SIZE)?\[1?\]",
        r"",
        "BINARY of a multipart (the whole message, or part 1 of message 1) is its bytes as "
        "stored: RFC 3516 4.2 decodes the section's own transfer encoding, which a multipart "
        "cannot have (RFC 2045 6.4); Dovecot also decodes every part below it and rewrites "
        "their Content-Transfer-Encoding headers.",
    ),
)


@pytest.fixture(scope="module")
def servers(stalwart: InProcessServer, dovecot: Dovecot) -> tuple[tuple[str, int], ...]:
    ours, theirs = stalwart.address("imap"), ("127.0.0.1", dovecot.port)
    messages = [Message(data, "\\Seen" if n % 2 else "", DATE) for n, data in enumerate(CORPUS)]
    for address in (ours, theirs):
        append_all(address, MAILBOX, messages)
    return ours, theirs


def part_numbers(structure: list[Any], prefix: str = "") -> list[str]:
    """The section numbers of the parts below a BODYSTRUCTURE (RFC 3501 6.4.5), those of
    enclosed messages included; a single-part message has the one part ``1``."""
    if isinstance(structure[0], list):  # multipart: the parts, then the subtype
        numbers = []
        for index, part in enumerate(takewhile(lambda p: isinstance(p, list), structure)):
            number = f"{prefix}{index + 1}"
            numbers += [number, *part_numbers(part, number + ".")]
        return numbers
    kind = [(item or b"").lower() for item in structure[:2]]
    if kind == [b"message", b"rfc822"] and prefix:  # an enclosed message: its body's parts
        inner = structure[8]
        return part_numbers(inner, prefix) if isinstance(inner[0], list) else [prefix + "1"]
    return [] if prefix else ["1"]


def test_part_numbers_walks_nested_structures():
    single = parse(b'("text" "plain" NIL NIL NIL "7bit" 5 1)')[0]
    assert part_numbers(single) == ["1"]
    nested = parse(
        b'((("text" "plain" NIL NIL NIL "7bit" 1 1)("text" "html" NIL NIL NIL "7bit" 1 1)'
        b' "alternative")("message" "rfc822" NIL NIL NIL "7bit" 9 (NIL NIL NIL NIL NIL NIL'
        b' NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 1 1) 1) "mixed")'
    )[0]
    assert part_numbers(nested) == ["1", "1.1", "1.2", "2", "2.1"]


def structures(address: tuple[str, int]) -> list[list[Any]]:
    """The BODYSTRUCTURE of every message, as Dovecot (the oracle) sees them."""
    with Raw(address) as client:
        client.login()
        client.command(f"EXAMINE {MAILBOX}")
        untagged, _ = client.command("FETCH 1:* BODYSTRUCTURE")
    return [parse(line[2:])[2][1] for line in untagged if b" FETCH " in line]


def test_bodystructure_envelope_and_whole_message_sections(servers):
    compare(
        *servers,
        [
            f"EXAMINE {MAILBOX}",
            "FETCH 1:* (BODYSTRUCTURE INTERNALDATE FLAGS RFC822.SIZE UID)",
            "FETCH 1:* ENVELOPE",
            "FETCH 1:* BODY",
            "FETCH 1:* (BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[]<10.40>)",
            "FETCH 1:* RFC822.HEADER",
            "FETCH 2 (BINARY.PEEK[] BINARY.PEEK[]<3.9>)",
            "FETCH 1:* BODY.PEEK[HEADER.FIELDS (From Subject X-Missing)]",
            "FETCH 1:* BODY.PEEK[HEADER.FIELDS.NOT (From Subject Date Message-ID)]",
            "UID FETCH 1:* (RFC822.SIZE FLAGS)",
        ],
        DELIBERATE,
    )


def test_every_part_of_every_message(servers):
    steps: list[Step | str] = [f"EXAMINE {MAILBOX}"]
    for number, structure in enumerate(structures(servers[1]), start=1):
        for part in part_numbers(structure):
            steps += [
                f"FETCH {number} (BODY.PEEK[{part}] BODY.PEEK[{part}.MIME])",
                f"FETCH {number} (BODY.PEEK[{part}]<2.7>)",
                f"FETCH {number} BINARY.PEEK[{part}]",
                f"FETCH {number} BINARY.SIZE[{part}]",
                f"FETCH {number} BINARY.PEEK[{part}]<1.5>",
            ]
    compare(*servers, steps, DELIBERATE)


NUL_MESSAGE = (
    b"From: x@example.org\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\nbefore\x00after\x00\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\nAAEC/w==\r\n--b--\r\n"
)


def test_nul_octets(stalwart: InProcessServer, dovecot: Dovecot):
    """NUL in a part, APPENDed as literal8: BINARY sends literal8 (~{n}) with the octets,
    decoded or not. (Not compared: BODY[1]. Dovecot stores a binary part it is given in
    APPEND re-encoded as base64, as RFC 3516 4.3 allows; we store the octets as given.)"""
    servers = stalwart.address("imap"), ("127.0.0.1", dovecot.port)
    for address in servers:
        append_all(address, "Nul", [Message(NUL_MESSAGE, "", DATE)])
    compare(
        *servers,
        [
            "EXAMINE Nul",
            "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])",
            "FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])",
            "FETCH 1 BINARY.PEEK[2]<1.2>",
        ],
        DELIBERATE,
    )
