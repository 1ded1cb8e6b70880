"""The milter codec (stalwart_py/milter/codec.py) against an independent implementation:
purepythonmilter's parsers read the commands we write, and we read the replies its
encoders write, one of each action."""

from __future__ import annotations

import struct

import pytest
from purepythonmilter.protocol import commands, responses
from purepythonmilter.protocol.packet import PacketDecoder

from stalwart_py.filters.api import (
    AddHeader,
    ChangeHeader,
    Changes,
    InsertHeader,
    Reject,
    TempFail,
)
from stalwart_py.filters.changes import apply_changes, split_fields
from stalwart_py.milter import codec
from stalwart_py.milter.client import parse_reply_text


def parse_command(packet: bytes) -> commands.BaseCommand:
    """Our bytes through purepythonmilter's packet decoder and command parser."""
    from purepythonmilter.api.models import MilterServerConnectionID

    decoder = PacketDecoder(connection_id=MilterServerConnectionID.generate())
    (payload,) = list(decoder.decode(packet))
    cls = commands.chars_to_command_registry[payload[:1]]
    return cls(data_raw=payload[1:]) if payload[1:] else cls()


def test_optneg_offers_version_6_and_every_action():
    parsed = parse_command(codec.optneg())
    assert isinstance(parsed, commands.OptionsNegotiate)
    version, actions, steps = struct.unpack("!III", codec.optneg()[5:])
    assert (version, actions) == (6, 0x1FF)
    assert steps & codec.Step.SKIP and steps & codec.Step.NR_HDR
    assert not steps & codec.Step.RCPT_REJ


def test_connect_ipv4_ipv6_and_unix():
    parsed = parse_command(codec.connect("[192.0.2.1]", "4", 40000, "192.0.2.1"))
    assert isinstance(parsed, commands.Connect)
    info = parsed.connection_info_args
    assert (info.hostname, str(info.addr), info.port) == ("[192.0.2.1]", "192.0.2.1", 40000)
    parsed = parse_command(codec.connect("[2001:db8::1]", "6", 25, "2001:db8::1"))
    assert str(parsed.connection_info_args.addr) == "2001:db8::1"
    parsed = parse_command(codec.connect("localhost", "L", 0, "/run/x.sock"))
    assert str(parsed.connection_info_args.path) == "/run/x.sock"


def test_envelope_commands():
    helo = parse_command(codec.helo("client.example"))
    assert isinstance(helo, commands.Helo) and helo.hostname == "client.example"
    mail = parse_command(codec.mail("a@example.org", ("BODY=8BITMIME", "SIZE=100")))
    assert isinstance(mail, commands.MailFrom)
    assert mail.address == "a@example.org"
    assert mail.esmtp_args == {"BODY": "8BITMIME", "SIZE": "100"}
    rcpt = parse_command(codec.rcpt("b@example.test"))
    assert isinstance(rcpt, commands.RcptTo) and rcpt.address == "b@example.test"
    assert isinstance(parse_command(codec.data()), commands.Data)
    assert isinstance(parse_command(codec.end_of_headers()), commands.EndOfHeaders)
    assert isinstance(parse_command(codec.end_of_message()), commands.EndOfMessage)
    assert isinstance(parse_command(codec.quit_()), commands.Quit)
    assert isinstance(parse_command(codec.abort()), commands.Abort)


def test_a_nul_in_a_value_cannot_shift_the_fields():
    mail = parse_command(codec.mail("a\0b@example.org"))
    assert mail.address == "ab@example.org"


def test_header_and_macros():
    header = parse_command(codec.header("Subject", "hello\n\tworld"))
    assert isinstance(header, commands.Header)
    assert (header.name, header.text) == ("Subject", "hello\n\tworld")
    macros = parse_command(codec.macros(codec.CONNECT, {"j": "mx.test", "client_addr": "1.2.3.4"}))
    assert isinstance(macros, commands.DefineMacro)
    assert macros.macros == {"j": "mx.test", "{client_addr}": "1.2.3.4"}


def test_body_is_cut_into_64k_chunks():
    body = bytes(range(256)) * 1000  # 256,000 octets
    chunks = codec.body_chunks(body)
    assert len(chunks) == 4
    parsed = [parse_command(chunk) for chunk in chunks]
    assert all(isinstance(p, commands.BodyChunk) for p in parsed)
    assert b"".join(p.data_raw for p in parsed) == body
    assert max(len(p.data_raw) for p in parsed) == codec.CHUNK_SIZE
    assert codec.body_chunks(b"") == []


def decode(response: responses.AbstractBaseResponse) -> codec.Reply:
    """One of purepythonmilter's encoded replies through our reader."""
    payload = response.encode()
    reader = codec.ReplyReader()
    wire = struct.pack("!I", len(payload)) + payload
    for i in range(len(wire)):  # byte by byte: any split reassembles
        reader.feed(wire[i : i + 1])
    found = reader.next_packet()
    assert found is not None and reader.next_packet() is None
    return codec.decode_reply(*found)


def test_every_modification_action_decodes():
    reply = decode(responses.AppendHeader(headername="X-Spam", headertext="yes"))
    assert (reply.code, reply.name, reply.value) == (codec.ADDHEADER, "X-Spam", "yes")
    reply = decode(responses.InsertHeader(headername="X-First", headertext="1", index=0))
    assert (reply.code, reply.index, reply.name) == (codec.INSHEADER, 0, "X-First")
    reply = decode(responses.ChangeHeader(headername="Subject", headertext="new", nth_occurrence=2))
    assert (reply.code, reply.index, reply.value) == (codec.CHGHEADER, 2, "new")
    reply = decode(responses.ReplaceBodyChunk(chunk=b"new body\r\n"))
    assert (reply.code, reply.body) == (codec.REPLBODY, b"new body\r\n")
    reply = decode(responses.AddRecipient(recipient="<c@example.test>"))
    assert (reply.code, reply.address) == (codec.ADDRCPT, "c@example.test")
    reply = decode(
        responses.AddRecipientWithEsmtpArgs(
            recipient="<d@example.test>", esmtp_args={"NOTIFY": "NEVER"}
        )
    )
    assert (reply.code, reply.address, reply.args) == (
        codec.ADDRCPT_PAR,
        "d@example.test",
        "NOTIFY=NEVER",
    )
    reply = decode(responses.RemoveRecipient(recipient="<b@example.test>"))
    assert (reply.code, reply.address) == (codec.DELRCPT, "b@example.test")
    reply = decode(responses.ChangeMailFrom(mail_from="<new@example.org>"))
    assert (reply.code, reply.address) == (codec.CHGFROM, "new@example.org")
    # purepythonmilter leaves SMFIR_QUARANTINE unimplemented: libmilter's layout by hand
    reply = codec.decode_reply(b"q", b"looks odd\0")
    assert (reply.code, reply.text) == (codec.QUARANTINE, "looks odd")


def test_every_disposition_decodes():
    for response, code in [
        (responses.Continue(), codec.CONTINUE),
        (responses.Accept(), codec.ACCEPT),
        (responses.Reject(), codec.REJECT),
        (responses.DiscardMessage(), codec.DISCARD),
        (responses.SkipToNextStage(), codec.SKIP),
        (responses.Progress(), codec.PROGRESS),
        (responses.CauseConnectionFail(), codec.CONNFAIL),
    ]:
        assert decode(response).code == code
    reply = decode(
        responses.RejectWithCode(primary_code=(5, 5, 4), enhanced_code=(5, 7, 1), text="GTUBE")
    )
    assert reply.code == codec.REPLYCODE
    assert parse_reply_text(reply.text) == Reject(554, "5.7.1", "GTUBE")
    reply = decode(responses.TempFailWithCode(primary_code=(4, 5, 1), text="later"))
    assert parse_reply_text(reply.text) == TempFail(451, "4.7.1", "later")


def test_reply_text_multiline_and_malformed():
    assert parse_reply_text("550-5.7.1 one\r\n550 5.7.1 two") == Reject(550, "5.7.1", "one two")
    assert parse_reply_text("250 ok") == Reject(550, "5.7.1", "ok")
    assert parse_reply_text("garbage") == Reject(550, "5.7.1", "garbage")


def test_optneg_reply_with_symbol_lists():
    data = struct.pack("!III", 6, 0x1FF | 0x400, 0x80)
    data += struct.pack("!I", 0) + b"j {client_addr}\0" + struct.pack("!I", 5) + b"i\0"
    negotiated = codec.decode_optneg(data)
    assert negotiated.version == 6
    assert negotiated.actions == codec.OFFERED_ACTIONS  # unknown bits dropped
    assert negotiated.steps == codec.Step.NR_HDR
    assert negotiated.macros == {codec.CONNECT: ("j", "{client_addr}"), codec.EOM: ("i",)}


@pytest.mark.parametrize(
    "wire",
    [
        struct.pack("!I", 0),  # an empty packet has no command byte
        struct.pack("!I", codec.MAX_PACKET + 1) + b"h",
    ],
)
def test_reader_refuses_bad_lengths(wire):
    reader = codec.ReplyReader()
    reader.feed(wire)
    with pytest.raises(codec.MilterProtocolError):
        reader.next_packet()


@pytest.mark.parametrize(
    ("code", "data"),
    [(b"h", b"no-terminator"), (b"i", b"\0\0"), (b"Z", b""), (b"e", b"")],
)
def test_malformed_replies_are_protocol_errors(code, data):
    with pytest.raises(codec.MilterProtocolError):
        codec.decode_reply(code, data)


MESSAGE = (
    b"Received: from a\r\n\tby b\r\nSubject: one\r\nX-Tag: 1\r\nX-Tag: 2\r\n"
    b"From: a@example.org\r\n\r\nBody\r\n"
)


def test_header_changes_follow_milter_semantics():
    changed = apply_changes(
        MESSAGE,
        Changes(
            headers=(
                AddHeader("X-Spam-Score", "1.5"),
                InsertHeader(0, "X-Top", "first"),
                ChangeHeader("x-tag", "two", 2),
                ChangeHeader("X-Tag", None, 1),
                ChangeHeader("X-Missing", "added"),
                AddHeader("X-Folded", "a\n\tb"),
            )
        ),
    )
    header, _, body = changed.partition(b"\r\n\r\n")
    assert split_fields(header + b"\r\n") == [
        b"X-Top: first\r\n",
        b"Received: from a\r\n\tby b\r\n",
        b"Subject: one\r\n",
        b"x-tag: two\r\n",  # the name as the filter wrote it, as Postfix does
        b"From: a@example.org\r\n",
        b"X-Spam-Score: 1.5\r\n",
        b"X-Missing: added\r\n",
        b"X-Folded: a\r\n\tb\r\n",
    ]
    assert body == b"Body\r\n"


def test_body_replacement_gets_crlf():
    assert apply_changes(MESSAGE, Changes(body=b"new\nlines\n")).endswith(
        b"\r\n\r\nnew\r\nlines\r\n"
    )
    assert apply_changes(MESSAGE, Changes()) is MESSAGE
