"""Sieve "mime", "foreverypart" and "extracttext" (RFC 5703) end to end: a script uploaded
over ManageSieve (sievelib), a MIME message with a forwarded message and an attachment
delivered over SMTP and LMTP, where it landed read back over IMAP."""

from __future__ import annotations

import base64

import pytest

from tests.support.managesieve import (
    PASSWORD,
    SieveLineClient,
    activate,
    deliver,
    deliver_lmtp,
    sieve_server,
    where,
)

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

MESSAGE = (
    b"From: Ann <ann@remote.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: invoice\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="x"\r\n'
    b"\r\n"
    b"--x\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Please pay =E2=82=AC 12 by Friday.\r\n"
    b"--x\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: Boss <boss@remote.test>\r\n"
    b"Subject: urgent\r\n"
    b"\r\n"
    b"forwarded text\r\n"
    b"--x\r\n"
    b'Content-Type: application/octet-stream; name="run.exe"\r\n'
    b'Content-Disposition: attachment; filename="run.exe"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"TVqQAAMAAAAEAAAA\r\n"
    b"--x--\r\n"
)

SCRIPT = (
    'require ["mime", "foreverypart", "extracttext", "variables", "fileinto", "imap4flags",'
    ' "mailbox"];\r\n'
    'foreverypart :name "parts" {\r\n'
    '  if header :mime :matches :param "filename" "content-disposition" "*.exe" {\r\n'
    '    addflag "$Executable";\r\n'
    '    break :name "parts";\r\n'
    "  }\r\n"
    '  if header :mime :contenttype "content-type" "text/plain" {\r\n'
    '    extracttext :first 40 "text";\r\n'
    '    if string :matches "${text}" "Please pay \u20ac * by*" { addflag "$Invoice${1}"; }\r\n'
    "  }\r\n"
    "}\r\n"
    'if header :mime :anychild "subject" "urgent" { fileinto "Forwarded"; }\r\n'
    'if exists :mime :anychild "content-disposition" { fileinto :create "Attachments"; }\r\n'
)


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def test_parts_are_walked_and_their_text_extracted_over_smtp_and_lmtp(server):
    activate(server, SCRIPT)
    [result] = deliver(server, MESSAGE, "bob@example.test")
    assert result.code == 250
    flags = ["$Executable", "$Invoice12"]
    # "Forwarded" matched the enclosed message's Subject; it does not exist: INBOX
    assert where(server) == {"INBOX": [flags], "Attachments": [flags]}
    [reply] = deliver_lmtp(server, MESSAGE.replace(b"urgent", b"later"), "bob@example.test")
    assert reply.code == 250
    assert where(server) == {"INBOX": [flags], "Attachments": [flags, flags]}


def test_managesieve_advertises_and_refuses_with_line_and_column(server):
    with SieveLineClient(server.address("managesieve")) as client:
        greeting = b"".join(client.response())
        sieve_line = next(line for line in greeting.split(b"\r\n") if line.startswith(b'"SIEVE"'))
        for name in (b"mime", b"foreverypart", b"extracttext"):
            assert b" " + name in sieve_line or b'"' + name in sieve_line
        token = f"\0bob@example.test\0{PASSWORD}".encode()
        reply = client.command(b'AUTHENTICATE "PLAIN" "' + base64.b64encode(token) + b'"')
        assert reply[-1].startswith(b"OK")
        script = b'require ["extracttext", "variables", "foreverypart"];\r\nextracttext "x";\r\n'
        reply = client.command(b"CHECKSCRIPT {%d+}\r\n" % len(script) + script)
        assert reply[-1].startswith(b"NO") and b"line 2, column 1" in reply[-1]
        assert b'\\"extracttext\\" must be inside a \\"foreverypart' in reply[-1]
