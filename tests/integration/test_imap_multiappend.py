"""MULTIAPPEND (RFC 3502) over real sockets: several messages in one APPEND, each with its
own flags and date, stored all or none with one APPENDUID; the size limits of
``imap.max-literal-size`` and ``imap.max-append-size`` with synchronizing and
non-synchronizing literals; a refusal in any message (date, flag, size, quota, mailbox)
stores nothing."""

from __future__ import annotations

import re

import pytest

from tests.integration.imap_support import PASSWORD, Raw, fetch_items, login, message, start


@pytest.fixture
def server(start_server, server_cert):
    limits = '[server.imap]\nmax-literal-size = "4K"\nmax-append-size = "10K"\n'
    return start(start_server, server_cert, extra=limits)


def exists(raw: Raw, mailbox: str = "INBOX") -> int:
    untagged, tagged = raw.command(f"STATUS {mailbox} (MESSAGES)", "st")
    assert tagged.startswith(b"st OK"), tagged
    return int(re.search(rb"MESSAGES (\d+)", untagged[0]).group(1))


def send_append(raw: Raw, head: bytes, messages: list[tuple[bytes, bytes]]) -> bytes:
    """``tag APPEND ...`` with synchronizing literals: waits for each ``+``. ``messages`` is
    (options before the literal, octets); returns the tagged reply (or a refusal)."""
    raw.send(b"t1 APPEND " + head)
    for index, (options, data) in enumerate(messages):
        raw.send(b" " + options + b"{%d}\r\n" % len(data))
        reply = raw.line()
        if not reply.startswith(b"+"):
            return reply
        raw.send(data)
        if index == len(messages) - 1:
            raw.send(b"\r\n")
    return raw.until("t1")[1]


def test_three_messages_in_one_append_with_their_own_flags_and_dates(server):
    bodies = [message(f"Multi {n}") for n in range(3)]
    with Raw(server) as raw:
        raw.login()
        reply = send_append(
            raw,
            b"INBOX",
            [
                (b"(\\Seen) ", bodies[0]),
                (b'"05-Mar-2024 13:04:05 +0200" ', bodies[1]),
                (b'(\\Flagged $Work) " 6-Mar-2024 00:00:00 +0000" ', bodies[2]),
            ],
        )
        match = re.fullmatch(rb"t1 OK \[APPENDUID (\d+) (\d+):(\d+)\] APPEND completed", reply)
        assert match is not None, reply
        assert int(match.group(3)) - int(match.group(2)) == 2
        assert exists(raw) == 3
    client = login(server)
    client.select("INBOX")
    first = fetch_items(client, "1", "(FLAGS INTERNALDATE RFC822.SIZE)")
    second = fetch_items(client, "2", "(FLAGS INTERNALDATE)")
    third = fetch_items(client, "3", "(FLAGS INTERNALDATE)")
    assert first["FLAGS"] == [b"\\Seen", b"\\Recent"]  # new: \\Recent to this session
    assert first["RFC822.SIZE"] == len(bodies[0])
    assert second["FLAGS"] == [b"\\Recent"]
    assert second["INTERNALDATE"] == b"05-Mar-2024 11:04:05 +0000"  # the same instant, in UTC
    assert sorted(third["FLAGS"]) == [b"$Work", b"\\Flagged", b"\\Recent"]
    assert third["INTERNALDATE"] == b"06-Mar-2024 00:00:00 +0000"
    _, data = client.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = [part[1].strip() for part in data if isinstance(part, tuple)]
    assert subjects == [b"Subject: Multi 0", b"Subject: Multi 1", b"Subject: Multi 2"]
    client.logout()


def test_literal_plus_messages_and_a_selected_mailbox_sees_them(server):
    with Raw(server) as raw:
        raw.login()
        raw.command("SELECT INBOX", "s")
        one, two = message("plus one"), message("plus two")
        raw.send(b"t1 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(one), one, len(two), two))
        untagged, tagged = raw.until("t1")
        assert b"* 2 EXISTS" in untagged
        assert re.fullmatch(rb"t1 OK \[APPENDUID \d+ 1:2\] APPEND completed", tagged)


def test_a_bad_date_or_flag_in_any_message_stores_nothing(server):
    with Raw(server) as raw:
        raw.login()
        good = message("good")
        reply = send_append(raw, b"INBOX", [(b"", good), (b'"31-Feb-2024 00:00:00 +0000" ', good)])
        assert reply == b"t1 BAD invalid date-time"
        reply = send_append(raw, b"INBOX", [(b"", good), (b"(\\Bogus) ", good)])
        assert reply == b"t1 BAD Unknown system flag \\Bogus"
        assert exists(raw) == 0
        reply = send_append(raw, b"Nowhere", [(b"", good), (b"", good)])
        assert reply == b"t1 NO [TRYCREATE] No mailbox Nowhere"
        # an empty message in the middle refuses the whole command
        raw.send(b"t2 APPEND INBOX {%d+}\r\n%s {0+}\r\n\r\n" % (len(good), good))
        assert raw.until("t2")[1] == b"t2 NO An empty message cannot be appended"
        assert exists(raw) == 0


def test_the_total_is_bounded_and_a_refusal_stores_nothing(server):
    piece = message("big", "x" * 3000 + "\r\n")  # under the 4K literal limit
    assert 3000 < len(piece) < 4096
    with Raw(server) as raw:
        raw.login()
        # the fourth synchronizing literal takes the total over 10K: refused before it is
        # sent, and the three already read are not stored
        reply = send_append(raw, b"INBOX", [(b"", piece)] * 4)
        assert reply == b"t1 NO [TOOBIG] the messages of this APPEND are over the limit of 10240"
        assert exists(raw) == 0
        # one literal over max-literal-size
        reply = send_append(raw, b"INBOX", [(b"", b"y" * 5000)])
        assert reply == b"t1 NO [TOOBIG] literal of 5000 octets is over the limit of 4096"
        assert raw.command("NOOP", "n")[1] == b"n OK NOOP completed"
        # within the limits: stored
        assert send_append(raw, b"INBOX", [(b"", piece)] * 2).startswith(b"t1 OK [APPENDUID")
        assert exists(raw) == 2
        # a non-synchronizing literal over the total cannot be skipped (RFC 7888 section 4)
        raw.send(b"t3 APPEND INBOX {%d+}\r\n%s" % (len(piece), piece))
        raw.send(b" {%d+}\r\n%s" % (len(piece), piece) * 2 + b" {%d+}\r\n" % len(piece))
        assert raw.line() == (
            b"* BYE [TOOBIG] the messages of this APPEND are over the limit of 10240"
        )
    with Raw(server) as raw:
        raw.login()
        assert exists(raw) == 2


def test_quota_over_the_whole_set_stores_nothing(server):
    server.add_account("bob@example.test", PASSWORD, quota_messages=3)
    with Raw(server) as raw:
        _, tagged = raw.command(f'LOGIN "bob@example.test" "{PASSWORD}"', "l")
        assert tagged.startswith(b"l OK")
        reply = send_append(raw, b"INBOX", [(b"", message(f"q{n}")) for n in range(4)])
        assert reply == b"t1 NO [OVERQUOTA] mailbox full: message quota exceeded"
        assert exists(raw) == 0
        reply = send_append(raw, b"INBOX", [(b"", message(f"q{n}")) for n in range(3)])
        assert reply.startswith(b"t1 OK [APPENDUID")
        assert exists(raw) == 3


def test_capability_and_a_single_append_still_answers_one_uid(server):
    client = login(server)
    typ, data = client.capability()
    assert b"MULTIAPPEND" in data[0].split()
    typ, data = client.append("INBOX", "(\\Seen)", None, message("single"))
    assert typ == "OK"
    assert re.fullmatch(rb"\[APPENDUID \d+ 1\] APPEND completed", data[0]), data
    client.logout()


def test_megabyte_messages_in_one_append_at_the_default_limits(start_server, server_cert):
    """Real sizes: three messages of 3 MB each in one MULTIAPPEND, stored whole."""
    server = start(start_server, server_cert)
    bodies = [message(f"Big {n}", f"line {n} of a big one\r\n" * 150_000) for n in range(3)]
    assert all(len(body) > 3_000_000 for body in bodies)
    with Raw(server) as raw:
        raw.login()
        reply = send_append(raw, b"INBOX", [(b"", body) for body in bodies])
        assert re.fullmatch(rb"t1 OK \[APPENDUID \d+ \d+:\d+\] APPEND completed", reply), reply
        assert exists(raw) == 3
    client = login(server)
    client.select("INBOX")
    for number, body in enumerate(bodies, 1):
        assert fetch_items(client, str(number), "RFC822.SIZE")["RFC822.SIZE"] == len(body)
    typ, data = client.fetch("3", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == bodies[2]
    client.logout()
