"""FETCH over real sockets on a mailbox of MIME messages (nested multipart, attachments,
non-ASCII headers, broken MIME): ENVELOPE and BODYSTRUCTURE checked field by field, BODY
sections and partials, BINARY, the implicit \\Seen, UID FETCH, and SELECT/EXAMINE."""

from __future__ import annotations

import imaplib

import pytest

from tests.integration import mime_corpus as corpus
from tests.integration.imap_support import USER, Raw, append, fetch_items, login, parse_data, start


@pytest.fixture
def server(start_server, server_cert):
    server = start(start_server, server_cert)
    for data in corpus.CORPUS:
        append(server, USER, "INBOX", data, internaldate=1704278400.0)  # 2024-01-03 10:40 UTC
    return server


@pytest.fixture
def client(server):
    client = login(server)
    client.select("INBOX")
    yield client
    client.logout()


def address(name, mailbox, host):
    return [name, None, mailbox, host]


def test_select_and_examine_responses(server):
    with Raw(server) as raw:
        raw.login()
        untagged, tagged = raw.command("SELECT INBOX")
        assert tagged == b"t1 OK [READ-WRITE] SELECT completed"
        uidvalidity = next(line for line in untagged if b"UIDVALIDITY" in line)
        assert untagged == [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
            b"Flags permitted",
            b"* 5 EXISTS",
            b"* 0 RECENT",
            b"* OK [UNSEEN 1] First unseen",
            uidvalidity,
            b"* OK [UIDNEXT 6] Predicted next UID",
            b"* OK [HIGHESTMODSEQ 6] Highest",
        ]
        untagged, tagged = raw.command("EXAMINE INBOX")
        assert untagged[0] == b"* OK [CLOSED] Previous mailbox closed"
        assert b"* OK [PERMANENTFLAGS ()] Flags permitted" in untagged
        assert tagged == b"t1 OK [READ-ONLY] EXAMINE completed"
        # read-only: no \Seen from BODY[], no STORE
        raw.command("FETCH 1 BODY[TEXT]")
        assert raw.command("FETCH 1 FLAGS")[0] == [b"* 1 FETCH (FLAGS ())"]
        assert raw.command("STORE 1 +FLAGS (x)")[1] == (
            b"t1 NO [READ-ONLY] The mailbox is open read-only (EXAMINE)"
        )
        raw.command("ENABLE IMAP4rev2")
        untagged, _ = raw.command("SELECT INBOX")
        assert b"* 0 RECENT" not in untagged and b'* LIST () "/" "INBOX"' in untagged
        assert raw.command("SELECT Nope")[1] == b"t1 NO [NONEXISTENT] No mailbox Nope"


def test_nested_multipart_envelope_and_bodystructure(client):
    items = fetch_items(client, "1", "(ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE FLAGS UID)")
    assert items["UID"] == 1
    assert items["FLAGS"] == []
    assert items["RFC822.SIZE"] == len(corpus.NESTED)
    assert items["INTERNALDATE"] == b"03-Jan-2024 10:40:00 +0000"
    ann = [address(b"Ann Example", b"ann", b"example.org")]
    assert items["ENVELOPE"] == [
        b"Wed, 3 Jan 2024 10:30:00 +0000",
        b"Quarterly report",
        ann,
        ann,  # Sender and Reply-To default to From
        ann,
        [address(None, b"alice", b"example.test")],
        None,
        None,
        None,
        b"<nested@example.org>",
    ]
    alternative, pdf, rfc822, subtype, params, disposition, language, location = items[
        "BODYSTRUCTURE"
    ]
    assert (subtype, params, disposition, language, location) == (
        b"MIXED",
        [b"BOUNDARY", b"mix"],
        None,
        None,
        None,
    )
    plain, html, alt_subtype, alt_params, *alt_ext = alternative
    assert (alt_subtype, alt_params, alt_ext) == (b"ALTERNATIVE", [b"BOUNDARY", b"alt"], [None] * 3)
    assert plain == [
        b"TEXT",
        b"PLAIN",
        [b"CHARSET", b"utf-8"],
        None,
        None,
        b"QUOTED-PRINTABLE",
        len(corpus.PLAIN_BODY),
        corpus.PLAIN_BODY.count(b"\n") + 1,
        None,
        None,
        None,
        None,
    ]
    assert html[:8] == [b"TEXT", b"HTML", [b"CHARSET", b"utf-8"], None, None, b"7BIT", 22, 1]
    assert pdf == [
        b"APPLICATION",
        b"PDF",
        [b"NAME", "Résumé.pdf".encode()],  # RFC 2231 decoded, sent as a literal
        b"<pdf@example.org>",
        b"the report",
        b"BASE64",
        len(corpus.PDF_BODY),
        None,
        [b"ATTACHMENT", [b"FILENAME", "Résumé.pdf".encode()]],
        None,
        None,
    ]
    message_type, message_subtype, _, _, _, encoding, size, envelope, body, lines, *ext = rfc822
    assert (message_type, message_subtype, encoding) == (b"MESSAGE", b"RFC822", b"7BIT")
    assert size == len(corpus.INNER)
    assert lines == corpus.INNER.count(b"\n") + 1
    assert envelope[1] == b"Forwarded" and envelope[9] == b"<inner@example.net>"
    assert envelope[2] == [address(b"Carol", b"carol", b"example.net")]
    assert body[:8] == [
        b"TEXT",
        b"PLAIN",
        [b"CHARSET", b"us-ascii"],
        None,
        None,
        b"7BIT",
        len(corpus.INNER_BODY),
        2,
    ]
    assert ext == [None, None, None, None]
    # BODY is BODYSTRUCTURE without the extension data
    body_only = fetch_items(client, "1", "BODY")["BODY"]
    assert body_only[0][0][:8] == plain[:8] and len(body_only[0][0]) == 8
    assert body_only[-1] == b"MIXED"


def test_non_ascii_headers_in_envelope(client):
    envelope = fetch_items(client, "2", "ENVELOPE")["ENVELOPE"]
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = envelope
    assert date == b"Thu, 4 Jan 2024 12:00:00 +0100"
    # Encoded words as in the header. The raw UTF-8 of the header (RFC 6532) reaches only a
    # session that enabled UTF8=ACCEPT (tests/integration/test_imap_utf8.py); this one did
    # not, so RFC 6855 section 3 has it downgraded to encoded words (utf8_downgrade.py),
    # the space after the sender's own encoded word carried inside ours.
    assert subject == b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= =?utf-8?b?IOKAkw==?= und mehr"
    assert from_ == [address(b"=?ISO-8859-1?Q?J=F6rg_M=FCller?=", b"jorg", b"example.de")]
    assert sender == [address(None, b"list-bounces", b"example.de")]
    assert reply_to == [address(b"=?utf-8?b?TcO8bGxlciwgSsO2cmc=?=", b"reply", b"example.de")]
    assert to == [
        [None, None, b"Team", None],  # group start
        address(None, b"a", b"example.test"),
        address(None, b"b", b"example.test"),
        [None, None, None, None],  # group end
        address(None, b"alice", b"example.test"),
    ]
    assert cc == [address(b"=?UTF-8?B?0JjQstCw0L0=?=", b"ivan", b"example.ru")]
    assert bcc == [address(None, b"hidden", b"example.test")]
    assert (in_reply_to, message_id) == (b"<earlier@example.de>", b"<utf8@example.de>")


def test_broken_mime_still_has_a_structure(client):
    unclosed = fetch_items(client, "3", "BODYSTRUCTURE")["BODYSTRUCTURE"]
    first, second, subtype = unclosed[:3]
    assert subtype == b"MIXED"
    assert first[:8] == [b"TEXT", b"PLAIN", [b"CHARSET", b"us-ascii"], None, None, b"7BIT", 5, 1]
    # the last part runs to the end of the message when the close delimiter is missing
    assert second[:8] == [
        b"TEXT",
        b"PLAIN",
        [b"CHARSET", b"us-ascii"],
        None,
        None,
        b"7BIT",
        len(b"second, never closed\r\n"),
        1,
    ]
    # a multipart without a boundary is one text/plain leaf
    no_boundary = fetch_items(client, "4", "BODYSTRUCTURE")["BODYSTRUCTURE"]
    assert no_boundary[:8] == [
        b"TEXT",
        b"PLAIN",
        [b"CHARSET", b"us-ascii"],
        None,
        None,
        b"7BIT",
        11,
        1,
    ]
    garbage = fetch_items(client, "5", "(ENVELOPE BODYSTRUCTURE)")
    assert garbage["BODYSTRUCTURE"][:7] == [
        b"TEXT",
        b"PLAIN",
        [b"CHARSET", b"utf-8"],
        None,
        None,
        b"X-UUENCODE",
        6,
    ]
    assert garbage["ENVELOPE"][1] == b"garbage type"
    typ, data = client.fetch("5", "BINARY[1]")
    assert typ == "NO" and data == [b"[UNKNOWN-CTE] Unknown Content-Transfer-Encoding x-uuencode"]


def test_body_sections_partials_and_binary(client):
    nested = corpus.NESTED
    items = fetch_items(
        client,
        "1",
        "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)] BODY.PEEK[1.1] BODY.PEEK[1.2.MIME]"
        " BODY.PEEK[3.HEADER.FIELDS.NOT (DATE FROM MESSAGE-ID)] BODY.PEEK[3.TEXT]"
        " BODY.PEEK[]<10.20> BODY.PEEK[2]<4.5> BINARY.PEEK[1.1] BINARY.SIZE[2] BINARY.PEEK[2])",
    )
    assert items["BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"] == (
        b"Subject: Quarterly report\r\nMessage-ID: <nested@example.org>\r\n\r\n"
    )
    assert items["BODY[1.1]"] == corpus.PLAIN_BODY
    assert items["BODY[1.2.MIME]"] == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    assert items["BODY[3.HEADER.FIELDS.NOT (DATE FROM MESSAGE-ID)]"] == (
        b"Subject: Forwarded\r\n\r\n"
    )
    assert items["BODY[3.TEXT]"] == corpus.INNER_BODY
    assert items["BODY[]<10>"] == nested[10:30]
    assert items["BODY[2]<4>"] == corpus.PDF_BODY[4:9]
    # The unencoded space of "-- " at a line end is transport padding to a decoder (RFC 2045
    # section 6.7 rule 3: an encoder writes "--=20"), so it goes, as in Dovecot.
    assert items["BINARY[1.1]"] == "Hallö Welt,\r\nsee the attachment.\r\n--\r\nAnn".encode()
    assert items["BINARY[2]"] == b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n1 0 obj\n"
    assert items["BINARY.SIZE[2]"] == len(items["BINARY[2]"])
    # PEEK left \Seen alone; RFC822.SIZE and friends
    assert fetch_items(client, "1", "FLAGS")["FLAGS"] == []
    items = fetch_items(client, "2", "(RFC822.HEADER RFC822.TEXT)")
    assert items["RFC822.HEADER"] == corpus.HEADERS.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert items["RFC822.TEXT"] == "Körper.\r\n".encode()
    assert items["FLAGS"] == [b"\\Seen"]  # RFC822.TEXT sets \Seen and says so


def test_implicit_seen_and_uid_fetch(client):
    typ, data = client.uid("FETCH", "3", "(BODY[TEXT])")
    assert typ == "OK"
    items = parse_data(data[0][0] + data[0][1] + data[1])[1]
    assert items[:2] == [b"UID", 3]  # UID FETCH always returns the UID
    assert items[items.index(b"FLAGS") + 1] == [b"\\Seen"]
    assert fetch_items(client, "3", "FLAGS")["FLAGS"] == [b"\\Seen"]
    typ, data = client.fetch("1:*", "(UID RFC822.SIZE)")
    sizes = [parse_data(line)[1] for line in data]
    assert sizes == [[b"UID", n + 1, b"RFC822.SIZE", len(m)] for n, m in enumerate(corpus.CORPUS)]
    typ, data = client.uid("FETCH", "4:*", "FLAGS")
    assert [parse_data(line)[0] for line in data] == [4, 5]
    # Past the end: the client's error (RFC 9051 section 9); a UID past the end names nothing.
    with pytest.raises(imaplib.IMAP4.error, match="out of range"):
        client.fetch("9", "FLAGS")
    with pytest.raises(imaplib.IMAP4.error, match="out of range"):
        client.fetch("4:9", "FLAGS")
    typ, data = client.uid("FETCH", "9", "FLAGS")
    assert typ == "OK" and data == [None]


def test_sequence_numbers_in_an_empty_mailbox_are_out_of_range(client):
    client.select("Trash")
    for numbers in ("1", "1:*", "*"):  # "*" too: RFC 9051 section 9
        with pytest.raises(imaplib.IMAP4.error, match="out of range"):
            client.fetch(numbers, "FLAGS")
    assert client.uid("FETCH", "1:*", "FLAGS") == ("OK", [None])
    assert client.uid("STORE", "1:*", "+FLAGS", "(\\Seen)") == ("OK", [None])


def test_fetch_macros(client):
    items = fetch_items(client, "2", "ALL")
    assert set(items) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    items = fetch_items(client, "2", "FULL")
    assert set(items) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}
    items = fetch_items(client, "2", "FAST")
    assert set(items) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}


def test_binary_content_with_nul_is_a_literal8(server):
    data = (
        b"Subject: bytes\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nAAEC/w==\r\n--b--\r\n"
    )
    append(server, USER, "INBOX", data)
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX")
        untagged, _ = raw.command("FETCH 6 (BINARY.PEEK[1] BINARY.SIZE[1])")
        assert untagged == [b"* 6 FETCH (BINARY[1] ~{4}\r\n\x00\x01\x02\xff BINARY.SIZE[1] 4)"]
