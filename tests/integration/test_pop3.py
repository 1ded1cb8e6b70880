"""POP3 on the wire (RFC 1939, 2449, 2595, 5034): poplib over plain TCP, STLS and implicit
TLS, raw sockets for what poplib does not do (pipelining, bad input), IMAP beside it. The
servers come from the plugin test kit (stalwart_py.testing), as a third-party plugin's would."""

from __future__ import annotations

import base64
import imaplib
import poplib
import socket
import time

import pytest

from tests.support.clients import LineClient
from tests.support.pop3 import (
    PASSWORD,
    USER,
    config,
    connect,
    connect_tls,
    fill,
    login,
    message,
)


@pytest.fixture
def server(stalwart_servers):
    server = stalwart_servers.start(config(None), tls=True)
    server.add_account(USER, PASSWORD)
    return server


@pytest.fixture
def client_tls(stalwart_client_tls):
    return stalwart_client_tls


def test_capabilities_before_and_after_stls(server, client_tls):
    client = connect(server, "pop3-stls")
    try:
        caps = client.capa()
        assert "STLS" in caps and "USER" not in caps
        assert caps["SASL"] == ["SCRAM-SHA-256"]  # nothing that sends the password in clear
        for name in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
            assert name in caps
        assert caps["EXPIRE"] == ["NEVER"] and caps["UTF8"] == ["USER"]
        assert caps["IMPLEMENTATION"][0] == "stalwart-py"
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
            client.user(USER)
        client.stls(client_tls)
        caps = client.capa()
        assert "STLS" not in caps and "USER" in caps
        assert caps["SASL"] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
        client.user(USER)
        assert client.pass_(PASSWORD).startswith(b"+OK")
        assert client.stat() == (0, 0)
        assert client.quit().startswith(b"+OK")
    finally:
        client.close()


def test_retr_list_uidl_top_over_implicit_tls(server, client_tls):
    bodies = [message(n, size=2000 * n) for n in range(1, 4)]
    uids = fill(server, bodies)
    client = connect_tls(server, client_tls)
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.stat() == (3, sum(map(len, bodies)))
    _, listing, _ = client.list()
    assert listing == [b"%d %d" % (n, len(body)) for n, body in enumerate(bodies, 1)]
    assert client.list(2).split() == [b"+OK", b"2", str(len(bodies[1])).encode()]
    _, uidls, _ = client.uidl()
    uidvalidity = int(uidls[0].split()[1].split(b".")[0])
    assert uidls == [b"%d %d.%d" % (n, uidvalidity, uid) for n, uid in enumerate(uids, 1)]
    _, lines, octets = client.retr(3)
    assert b"\r\n".join(lines) + b"\r\n" == bodies[2] and octets == len(bodies[2])
    _, lines, _ = client.top(1, 0)
    assert lines[-1] == b"" and lines[-2].startswith(b"Subject: message 1")
    _, lines, _ = client.top(2, 1)
    assert lines[-1] == b"Hello."
    client.quit()


def test_uidl_is_stable_and_deletions_happen_only_at_quit(server):
    uids = fill(server, [message(n) for n in range(1, 6)])
    client = login(server)
    _, first, _ = client.uidl()
    client.dele(2)
    client.dele(4)
    with pytest.raises(poplib.error_proto, match="deleted"):
        client.retr(2)
    assert client.stat()[0] == 3
    client.rset()
    assert client.stat()[0] == 5
    client.dele(1)
    client.close()  # gone without QUIT: nothing is removed (RFC 1939 section 6)

    client = login(server)
    _, again, _ = client.uidl()
    assert again == first
    client.dele(1)
    client.dele(3)
    assert client.quit().endswith(b"(2 messages deleted)")

    client = login(server)
    _, after, _ = client.uidl()
    ids = {line.split()[1] for line in after}
    assert ids == {line.split()[1] for line in first} - {
        first[0].split()[1],
        first[2].split()[1],
    }
    assert len(after) == 3 and after[0].split()[0] == b"1"  # renumbered from 1
    fill(server, [message(9)])
    client.quit()
    client = login(server)
    _, latest, _ = client.uidl()
    assert [line.split()[1] for line in latest[:3]] == [line.split()[1] for line in after]
    assert latest[3].split()[1].endswith(b".%d" % (uids[-1] + 1))
    client.quit()


def test_a_second_session_finds_the_maildrop_locked(server):
    fill(server, [message(1)])
    first = login(server)
    second = connect(server, "pop3")
    second.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    # The second session stays in AUTHORIZATION and may try again once the first is gone.
    first.close()  # dropped without QUIT: the lock goes with the session
    server.wait_until(lambda: server.registry.open_connections <= 1)
    second.user(USER)
    assert second.pass_(PASSWORD).startswith(b"+OK")
    assert second.stat()[0] == 1
    second.quit()


def test_pipelined_commands_are_answered_in_order(server):
    fill(server, [message(n) for n in range(1, 4)])
    with LineClient(server.address("pop3")) as client:
        assert client.readline().startswith(b"+OK")
        client.send(
            f"CAPA\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nDELE 2\r\n"
            "LIST\r\nNOOP\r\nXYZZY\r\nQUIT\r\n".encode()
        )
        received = b""
        while line := client.readline():
            received += line
    statuses = [
        line.split(b" ", 1)[0] for line in received.split(b"\r\n") if line[:1] in (b"+", b"-")
    ]
    assert statuses == [b"+OK"] * 8 + [b"-ERR", b"+OK"], received
    assert b"\r\n+OK 3 " in received  # STAT
    assert received.endswith(b"(1 messages deleted)\r\n")


def test_deletions_reach_an_imap_session_as_expunge(server):
    fill(server, [message(n) for n in range(1, 5)])
    imap = imaplib.IMAP4(*server.address("imap"), timeout=20)
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    client = login(server)
    client.retr(1)
    client.dele(1)
    client.dele(3)
    client.quit()
    typ, _ = imap.noop()
    assert typ == "OK"
    expunged = imap.response("EXPUNGE")[1]
    assert sorted(expunged, reverse=True) == [b"3", b"1"] or len(expunged) == 2, expunged
    typ, data = imap.search(None, "ALL")
    assert data == [b"1 2"]
    typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"message 2" in data[0][1] and b"message 4" in data[2][1]
    imap.logout()


def test_byte_stuffing_bare_lf_and_sizes_as_sent(server):
    stuffed = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend"  # no final CRLF
    bare = b"Subject: bare\n\nline one\nline two\n"
    fill(server, [stuffed, bare])
    client = login(server)
    _, listing, _ = client.list()
    sizes = [int(line.split()[1]) for line in listing]
    # Sizes count every line end as CRLF, the final one RETR adds included, and not the
    # byte-stuffing: what the client ends up with.
    sent = [stuffed + b"\r\n", bare.replace(b"\n", b"\r\n")]
    assert sizes == [len(data) for data in sent]
    for number, expected in enumerate(sent, 1):
        _, lines, octets = client.retr(number)
        assert b"\r\n".join(lines) + b"\r\n" == expected
        assert octets == sizes[number - 1]
    client.quit()


def test_auth_with_the_servers_mechanisms(server):
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    with LineClient(server.address("pop3")) as client:
        client.readline()
        client.send(b"AUTH\r\n")
        assert [client.readline() for _ in range(5)] == [
            b"+OK Mechanisms follow\r\n",
            b"PLAIN\r\n",
            b"LOGIN\r\n",
            b"SCRAM-SHA-256\r\n",
            b".\r\n",
        ]
        client.send(b"AUTH PLAIN\r\n")
        assert client.readline() == b"+ \r\n"
        client.send(b"*\r\n")
        assert client.readline() == b"-ERR Authentication cancelled\r\n"
        client.send(b"AUTH PLAIN " + base64.b64encode(f"\0{USER}\0wrong".encode()) + b"\r\n")
        assert client.readline() == b"-ERR [AUTH] Authentication failed\r\n"
        client.send(b"AUTH PLAIN " + plain + b"\r\n")
        assert client.readline().startswith(b"+OK")
        client.send(b"AUTH PLAIN " + plain + b"\r\n")
        assert client.readline().startswith(b"-ERR AUTH is not valid in the transaction")
        client.send(b"QUIT\r\n")
        assert client.readline().startswith(b"+OK")


def test_utf8_and_too_many_failures(server):
    client = connect(server)
    assert client._shortcmd("UTF8").startswith(b"+OK")
    for attempt in range(3):
        client.user(USER)
        if attempt < 2:
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
                client.pass_("wrong")
    with pytest.raises(poplib.error_proto, match="Too many failed logins"):
        client.pass_("wrong")
    with pytest.raises((EOFError, OSError, poplib.error_proto)):
        client.noop()
    client.close()


def test_bad_input_gets_err_and_the_session_goes_on(server):
    with LineClient(server.address("pop3")) as client:
        client.readline()
        for line, answer in [
            (b"RETR 1\r\n", b"-ERR RETR is not valid in the authorization state\r\n"),
            (b"PASS x\r\n", b"-ERR USER comes first\r\n"),
            (b"\xff\xfe\r\n", b"-ERR the command is not valid UTF-8\r\n"),
            (b"X" * 20000 + b"\r\n", b"-ERR line too long\r\n"),
            (b"USER " + b"a" * 300 + b"\r\n", b"-ERR command line longer than 255 octets\r\n"),
        ]:
            client.send(line)
            assert client.readline() == answer, line[:20]
        client.send(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
        assert client.readline().startswith(b"+OK") and client.readline().startswith(b"+OK")
        for line, answer in [
            (b"RETR 0\r\n", b"-ERR no message 0\r\n"),
            (b"RETR 99999999999999\r\n", b"-ERR a message number is a positive decimal number\r\n"),
            (b"TOP 1\r\n", b"-ERR wrong number of arguments\r\n"),
            (b"LIST 1 2\r\n", b"-ERR takes at most one message number\r\n"),
            (b"STLS\r\n", b"-ERR STLS is not valid in the transaction state\r\n"),
        ]:
            client.send(line)
            assert client.readline() == answer, line
        client.send(b"BOGUS\r\n" * 10)
        replies = [client.readline() for _ in range(11)]
        assert replies[-1] == b"-ERR Too many bad commands, closing\r\n"
        assert client.readline() == b""


def test_idle_timeout_before_login(stalwart_servers):
    server = stalwart_servers.start(config(None, extra='idle-timeout = "1s"'), tls=True)
    started = time.monotonic()
    with socket.create_connection(server.address("pop3"), timeout=10) as sock:
        received = b""
        while chunk := sock.recv(1000):
            received += chunk
    assert received.endswith(b"-ERR [SYS/TEMP] Disconnected for inactivity\r\n")
    assert time.monotonic() - started < 8
