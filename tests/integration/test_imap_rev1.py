"""IMAP4rev1 details over real sockets (issue 14, section 3): BINARY of quoted-printable
parts (RFC 2045 section 6.7), NUL octets in BODY[] and BINARY[] (RFC 3516 section 4.2), atoms
that begin with ``~``, and CONDSTORE with ESEARCH (RFC 7162 sections 3.1 and 3.1.5)."""

from __future__ import annotations

import re

import pytest

from tests.integration.imap_support import USER, Raw, append, message, start

# A quoted-printable body as it may arrive after transport: padding (spaces, tabs) at line
# ends, soft breaks written "=" then padding, and an encoded "=" before a padded line end.
QP_BODY = b"caf=C3=A9 au lait  \r\nsoft=  \r\nly broken=\t\r\n line\r\nends with =3D \t\r\nlast"
QP_DECODED = "café au lait\r\nsoftly broken line\r\nends with =\r\nlast".encode()
QP_MESSAGE = (
    b"From: bob@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + QP_BODY + b"\r\n--b--\r\n"
)
NUL_MESSAGE = (
    b"From: bob@example.org\r\nSubject: nul\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\na\x00b\x00\r\n--b--\r\n"
)


@pytest.fixture
def server(start_server, server_cert):
    return start(start_server, server_cert)


def test_binary_of_quoted_printable_drops_padding_and_honours_padded_soft_breaks(server):
    append(server, USER, "INBOX", QP_MESSAGE)
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX")
        untagged, tagged = raw.command("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
        assert tagged == b"t1 OK FETCH completed"
        size = len(QP_DECODED)
        assert untagged == [
            b"* 1 FETCH (BINARY[1] {%d}\r\n%s BINARY.SIZE[1] %d)" % (size, QP_DECODED, size)
        ]
        # Every partial fetch is a slice of the same decoded octets.
        for start, count in ((0, 5), (5, 9), (20, 100), (size - 3, 10)):
            expected = QP_DECODED[start : start + count]
            untagged, _ = raw.command(f"FETCH 1 BINARY.PEEK[1]<{start}.{count}>")
            assert untagged == [
                b"* 1 FETCH (BINARY[1]<%d> {%d}\r\n%s)" % (start, len(expected), expected)
            ]
        # BODY[1] stays the encoded octets, as stored.
        untagged, _ = raw.command("FETCH 1 BODY.PEEK[1]")
        assert untagged == [b"* 1 FETCH (BODY[1] {%d}\r\n%s)" % (len(QP_BODY), QP_BODY)]


def test_nul_octets_are_a_literal8_only_in_binary(server):
    append(server, USER, "INBOX", NUL_MESSAGE)
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX")
        # RFC 3516 section 4.2: literal8 only in a BINARY response. BODY[1] is a plain
        # literal of the same length, each NUL sent as 0x80 (as Dovecot does).
        untagged, _ = raw.command("FETCH 1 (BODY.PEEK[1] BODY.PEEK[1]<1.2>)")
        assert untagged == [b"* 1 FETCH (BODY[1] {4}\r\na\x80b\x80 BODY[1]<1> {2}\r\n\x80b)"]
        untagged, _ = raw.command("FETCH 1 BODY.PEEK[]")
        assert b"~{" not in untagged[0] and b"\x00" not in untagged[0]
        assert b"a\x80b\x80\r\n--b--" in untagged[0]
        untagged, _ = raw.command("FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[1]<0.2>)")
        assert untagged == [b"* 1 FETCH (BINARY[1] ~{4}\r\na\x00b\x00 BINARY[1]<0> ~{2}\r\na\x00)"]
        # A BINARY slice without NUL is an ordinary literal.
        untagged, _ = raw.command("FETCH 1 BINARY.PEEK[1]<2.1>")
        assert untagged == [b"* 1 FETCH (BINARY[1]<2> {1}\r\nb)"]


def test_an_atom_may_begin_with_a_tilde(server):
    with Raw(server) as raw:
        raw.login()
        assert raw.command('LIST "" ~foo') == ([], b"t1 OK LIST completed")
        assert raw.command("CREATE ~foo")[1] == b"t1 OK CREATE completed"
        assert raw.command('LIST "" ~foo')[0] == [b'* LIST (\\HasNoChildren) "/" "~foo"']
        assert raw.command('LIST "" ~f*')[0] == [b'* LIST (\\HasNoChildren) "/" "~foo"']
        assert raw.command("SELECT ~foo")[1] == b"t1 OK [READ-WRITE] SELECT completed"
        assert raw.command("STATUS ~foo (MESSAGES)")[0] == [b'* STATUS "~foo" (MESSAGES 0)']
        # ~{ still begins a literal8, which is not allowed where an astring is read.
        untagged, tagged = raw.command("STATUS ~{4+}\r\n~foo (MESSAGES)")
        assert untagged == [] and tagged.startswith(b"t1 BAD") and b"literal8" in tagged


def _modseqs(raw: Raw) -> dict[int, int]:
    untagged, _ = raw.command("FETCH 1:* (MODSEQ)")
    found = {}
    for line in untagged:
        match = re.fullmatch(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", line)
        if match:
            found[int(match.group(1))] = int(match.group(2))
    return found


def test_esearch_min_and_max_report_the_modseq_of_the_message_returned(server):
    for n in range(4):
        append(server, USER, "INBOX", message(f"m{n}"))
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX")
        # Messages 1 and 2 are changed last, so the lowest and highest matches do not
        # hold the highest mod-sequence: 2 > 1 > 4 > 3.
        raw.command("STORE 3 +FLAGS (\\Seen)")
        raw.command("STORE 4 +FLAGS (\\Flagged)")
        raw.command("STORE 1 +FLAGS (\\Answered)")
        raw.command("STORE 2 +FLAGS (\\Answered)")
        modseq = _modseqs(raw)
        assert modseq[2] > modseq[1] > modseq[4] > modseq[3]
        floor = min(modseq.values())

        def esearch(returns: str, criteria: str = f"MODSEQ {floor}") -> bytes:
            untagged, tagged = raw.command(f"SEARCH RETURN ({returns}) {criteria}")
            assert tagged == b"t1 OK SEARCH completed"
            assert len(untagged) == 1
            return untagged[0]

        assert esearch("MIN") == b'* ESEARCH (TAG "t1") MIN 1 MODSEQ %d' % modseq[1]
        assert esearch("MAX") == b'* ESEARCH (TAG "t1") MAX 4 MODSEQ %d' % modseq[4]
        both = max(modseq[1], modseq[4])
        assert esearch("MIN MAX") == b'* ESEARCH (TAG "t1") MIN 1 MAX 4 MODSEQ %d' % both
        # ALL and COUNT are about every match: the highest of them all.
        assert esearch("ALL") == b'* ESEARCH (TAG "t1") ALL 1:4 MODSEQ %d' % modseq[2]
        assert esearch("MIN COUNT") == (b'* ESEARCH (TAG "t1") MIN 1 COUNT 4 MODSEQ %d' % modseq[2])
        assert esearch("MAX", f"MODSEQ {floor} NOT 4") == (
            b'* ESEARCH (TAG "t1") MAX 3 MODSEQ %d' % modseq[3]
        )
        untagged, _ = raw.command(f"SEARCH MODSEQ {floor}")
        assert untagged == [b"* SEARCH 1 2 3 4 (MODSEQ %d)" % modseq[2]]
        # Nothing matched: no MODSEQ at all.
        assert esearch("MIN", f"MODSEQ {modseq[2] + 1}") == b'* ESEARCH (TAG "t1")'


@pytest.mark.parametrize(
    "command",
    [
        "FETCH 1 (FLAGS MODSEQ)",
        "FETCH 1 (FLAGS) (CHANGEDSINCE 1)",
        "SEARCH MODSEQ 1",
        "UID SEARCH RETURN (COUNT) MODSEQ 1",
        "STORE 1 (UNCHANGEDSINCE 99) +FLAGS (x)",
        "STATUS INBOX (HIGHESTMODSEQ)",
        "ENABLE CONDSTORE",
    ],
)
def test_the_first_condstore_enabling_command_reports_highestmodseq(server, command):
    append(server, USER, "INBOX", message("one"))
    append(server, USER, "INBOX", message("two"))
    with Raw(server) as raw:
        raw.login()
        untagged, _ = raw.command("SELECT INBOX")
        (line,) = [line for line in untagged if b"HIGHESTMODSEQ" in line]
        highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", line).group(1))
        untagged, tagged = raw.command(command)
        assert tagged.startswith(b"t1 OK"), tagged
        announced = [line for line in untagged if line.startswith(b"* OK [HIGHESTMODSEQ")]
        # Before any other response of the command, and the view's value (a STORE's own
        # change comes after, in its FETCH).
        assert announced == [b"* OK [HIGHESTMODSEQ %d] Highest" % highest]
        assert untagged[0] == announced[0]
        # Only the first: CONDSTORE is on for the rest of the session.
        untagged, _ = raw.command("FETCH 1 (MODSEQ)")
        assert not any(line.startswith(b"* OK [HIGHESTMODSEQ") for line in untagged)
        untagged, _ = raw.command("STORE 2 +FLAGS (\\Seen)")
        assert re.fullmatch(rb"\* 2 FETCH \(FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", untagged[0])


def test_a_session_that_selected_with_condstore_gets_no_second_highestmodseq(server):
    append(server, USER, "INBOX", message("one"))
    with Raw(server) as raw:
        raw.login()
        untagged, _ = raw.command("SELECT INBOX (CONDSTORE)")
        assert sum(line.startswith(b"* OK [HIGHESTMODSEQ") for line in untagged) == 1
        untagged, _ = raw.command("FETCH 1 (MODSEQ)")
        assert len(untagged) == 1 and untagged[0].startswith(b"* 1 FETCH (MODSEQ (")
