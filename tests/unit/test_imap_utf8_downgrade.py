"""The ENVELOPE downgrade for sessions without UTF8=ACCEPT (RFC 6855 section 3): encoded
words (RFC 2047) that decode back to the header's text, IDNA hosts, ASCII left alone."""

from __future__ import annotations

from email.header import decode_header, make_header

import pytest

from protocols.imap.structure import envelope
from protocols.imap.utf8_downgrade import MAX_WORD, downgrade_envelope, encode_words
from stalwart_py import mime
from tests.integration.imap_support import parse_data


def decoded(text: str) -> str:
    return str(make_header(decode_header(text)))


DASH = "\u2013"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Grüße aus Köln", None),
        ("Müller, Jörg", None),
        ("a é b ü c", None),
        # the sender's own encoded word is kept, and the space after it survives
        (f"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= {DASH} und mehr", f"Grüße {DASH} und mehr"),
        ("日本語の件名 " * 20, None),  # long: words of at most 75 characters
        ("emoji 🎉🎉 end", None),
    ],
)
def test_encoded_words_decode_to_the_text(text, expected):
    encoded = encode_words(text)
    assert encoded.isascii()
    assert all(len(word) <= MAX_WORD for word in encoded.split(" "))
    assert decoded(encoded) == (expected or text)


def test_ascii_is_untouched():
    assert encode_words("plain subject") == "plain subject"
    value = b'("Mon" "x" NIL NIL NIL NIL NIL NIL NIL "<a@b>")'
    assert downgrade_envelope(value) is value


def test_a_whole_envelope_from_the_parser():
    data = (
        "From: Jörg <jörg@bücher.example>\r\nTo: Team: a@b.example;\r\n"
        'Subject: Köln "quoted" \\ end\r\nMessage-ID: <ü@x>\r\n\r\nbody\r\n'
    ).encode()
    parsed = mime.parse_message(data)
    raw = envelope(parsed.envelope)
    assert not raw.isascii()
    fields = parse_data(downgrade_envelope(raw))[0]
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = fields
    assert decoded(subject.decode()) == 'Köln "quoted" \\ end'
    name, _, local, host = from_[0]
    assert decoded(name.decode()) == "Jörg"
    assert decoded(local.decode()) == "jörg"
    assert host == b"xn--bcher-kva.example"
    assert sender == reply_to == from_
    assert to == [[None, None, b"Team", None], [None, None, b"a", b"b.example"], [None] * 4]
    assert decoded(message_id.decode()) == "<ü@x>"
    assert (date, cc, bcc, in_reply_to) == (None, None, None, None)


def test_latin1_octets_are_read_as_latin1():
    value = b'(NIL "caf\xe9" NIL NIL NIL NIL NIL NIL NIL NIL)'
    subject = parse_data(downgrade_envelope(value))[0][1]
    assert decoded(subject.decode()) == "café"
