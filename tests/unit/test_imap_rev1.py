"""Pure pieces of the IMAP4rev1 fixes (issue 14, section 3): the quoted-printable decoder
behind BINARY (RFC 2045 section 6.7) and atoms that begin with ``~``."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.imap.commands import ListArgs, parse_command
from protocols.imap.lexer import ParseError, Reader
from protocols.imap.sections import decode_body, decode_quoted_printable


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"plain", b"plain"),
        (b"caf=C3=A9", "café".encode()),
        (b"caf=c3=a9", "café".encode()),  # lower-case hex, as robust decoders accept
        (b"padded  \t\r\nline", b"padded\r\nline"),  # rule 3: trailing whitespace is padding
        (b"padded at the end \t", b"padded at the end"),
        (b"soft=\r\nbreak", b"softbreak"),  # rule 5
        (b"soft=  \r\nbreak", b"softbreak"),  # "=" then padding is still a soft break
        (b"soft=\t \r\nbreak", b"softbreak"),
        (b"soft= \nbare LF", b"softbare LF"),
        (b"kept =20\r\n", b"kept  \r\n"),  # encoded spaces are data, not padding
        (b"equals =3D \r\n", b"equals =\r\n"),
        (b"last=", b"last"),
        (b"=ZZ and =4", b"=ZZ and =4"),  # not an encoding: kept as it is
        (b"a\r\n\r\nb", b"a\r\n\r\nb"),
    ],
)
def test_quoted_printable_examples(encoded: bytes, decoded: bytes):
    assert decode_quoted_printable(encoded) == decoded
    assert decode_body(encoded, "quoted-printable") == decoded


@given(st.binary(max_size=300))
def test_quoted_printable_undoes_the_encoder_even_after_padding(data: bytes):
    """What an encoder wrote decodes back, also when transport added padding at every line
    end (spaces after soft breaks and hard ones: an encoder never ends a line with a space)."""
    encoded = binascii.b2a_qp(data, istext=False)
    assert decode_quoted_printable(encoded) == data
    padded = encoded.replace(b"\n", b" \t\n")
    assert decode_quoted_printable(padded) == data


def test_an_atom_may_begin_with_a_tilde():
    assert Reader(b"~foo\r\n").astring() == b"~foo"
    assert Reader(b"~\r\n").astring() == b"~"
    assert Reader(b"~f*o%\r\n").list_mailbox() == b"~f*o%"
    assert Reader(b"~{3}\r\na\x00c\r\n").literal(binary=True) == b"a\x00c"
    with pytest.raises(ParseError, match="literal8"):
        Reader(b"~{3}\r\nabc\r\n").astring()
    args: ListArgs = parse_command(b'a LIST "" ~foo\r\n').args
    assert args.patterns == (b"~foo",)
    assert parse_command(b"a SELECT ~peter/mail\r\n").name == "SELECT"
