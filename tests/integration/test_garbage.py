"""Hostile input against a running server, every protocol at once: random bytes and
mangled commands (seeded, so a failure repeats), before and after logging in. Whatever
arrives, a client gets a protocol error, never a traceback; the server logs no traceback;
no HTTP request gets a 500; and every listener still answers afterwards.

Each of these found a real bug when first run: a non-ASCII IMAP tag broke the session,
deleting a mailbox that held messages failed, and a queue id past SQLite's integers gave 500.
The last tests reproduce field failures of the admin API the way they were found: hostile
names stored, a request framed twice answered on an open connection, and passwords SASLprep
refuses answered 500; and then those of the connections: an APPEND of a megabyte that hung, a
LOGIN literal that forged a log line, a PROXY header without a client that made anyone a relay
host, postmaster refused, a trickling client held for ever, a world-readable data directory,
an empty configuration accepted.
"""

from __future__ import annotations

import base64
import http.client
import imaplib
import json
import random
import select
import socket
import stat
import time

import pytest

from tests.support.servers import ServerProcess, stalwart_cli, write_config

PASSWORD = "a-long-enough-secret"
ADMIN = "admin@mx.example.test"
CONFIG = """
[server]
hostname = "mx.example.test"

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"

[server.listener.lmtp]
bind = "127.0.0.1:0"
protocol = "lmtp"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"

[server.listener.managesieve]
bind = "127.0.0.1:0"
protocol = "managesieve"

[server.listener.pop3]
bind = "127.0.0.1:0"
protocol = "pop3"
pop3.auth.allow-plaintext = true

[server.listener.smtp-proxied]
bind = "127.0.0.1:0"
protocol = "smtp"
proxy.trusted-networks = ["127.0.0.0/8"]
command-timeout = "2s"

[queue]
hold = true
"""

WORDS = [
    b"EHLO x", b"MAIL FROM:<a@b>", b"RCPT TO:<admin@mx.example.test>", b"DATA", b"BDAT 10 LAST",
    b"AUTH PLAIN", b"STARTTLS", b"a LOGIN admin@mx.example.test pw", b"a SELECT INBOX",
    b"a FETCH 1:* (BODY[])", b"a APPEND INBOX {5}", b"a IDLE", b"DONE", b"GET / HTTP/1.1",
    b"POST /api/inject HTTP/1.1", b"Transfer-Encoding: chunked", b"Content-Length: 99999999999",
    b'AUTHENTICATE "PLAIN"', b'PUTSCRIPT "x" {10+}', b"LOGOUT", b"QUIT", b".", b"{4294967296}",
    b"\x00\xff\xfe", b"*", b"(((((((", b"%" * 50, "été".encode(), "été CREATE {100000}".encode(),
    "MAIL FROM:<a@b> SIZE=²".encode(), "BDAT ² LAST".encode(), 'HAVESPACE "x" ²'.encode(),
    b"USER admin@mx.example.test", b"PASS a-long-enough-secret", b"RETR 1", b"TOP 1 99999999999",
    b"AUTH PLAIN =", b"STLS", b"UIDL 0", b"DELE 1", b"CAPA", b"UTF8", "USER é".encode(),
]  # fmt: skip

IMAP_COMMANDS = [
    "FETCH {s} (FLAGS ENVELOPE BODYSTRUCTURE)", "FETCH {s} (BODY[{p}]<0.{n}>)",
    "FETCH {s} BINARY[{p}]", "UID FETCH {s} (FLAGS) (CHANGEDSINCE {n} VANISHED)",
    "STORE {s} +FLAGS (\\Deleted $x)", "STORE {s} (UNCHANGEDSINCE {n}) FLAGS ()",
    "COPY {s} Trash", "MOVE {s} Archive", "UID MOVE {s} Nope", "EXPUNGE", "UID EXPUNGE {s}",
    "SEARCH {k}", "UID SEARCH RETURN (MIN MAX COUNT SAVE) {k}", "SEARCH CHARSET UTF-8 {k}",
    "SELECT INBOX (QRESYNC (1 {n} {s}))", "STATUS INBOX (MESSAGES DELETED-STORAGE SIZE)",
    'LIST "" * RETURN (STATUS (MESSAGES) SPECIAL-USE)', "CREATE {m}", "DELETE {m}",
    "RENAME {m} {m}", "GETQUOTAROOT INBOX", "ENABLE QRESYNC IMAP4rev2", "UNSELECT", "CLOSE",
]  # fmt: skip

HTTP_PATHS = [
    "/api/accounts", "/api/accounts/{a}", "/api/aliases", "/api/aliases/{a}", "/api/domains",
    "/api/domains/{d}", "/api/inject", "/api/inject?sender={a}&recipient={a}", "/api/listeners",
    "/api/listeners/{x}", "/api/queue", "/api/queue/{n}", "/api/queue/{n}/retry",
    "/api/reports?limit={n}", "/api/config/effective", "/healthz", "/readyz", "/metrics",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("garbage"), CONFIG)
    with ServerProcess(path, env={"STALWART_ADMIN_PASSWORD": PASSWORD}) as server:
        yield server
        log = server.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]
    assert "eof_received" not in log  # asyncio's noise on every TLS close, once


def exchange(address, data: bytes) -> bytes:
    """Send ``data`` and end the stream; everything the server answers, until it closes (as it
    must, once its client's stream has ended)."""
    received = b""
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionError:  # it may close on bad input before reading it all
            pass
    return received


def garbage(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.5:
            parts.append(rng.choice(WORDS))
        elif roll < 0.8:
            parts.append(rng.randbytes(rng.randint(0, 200)))
        else:
            parts.append(rng.choice(WORDS) * rng.randint(1, 500))
        parts.append(rng.choice([b"\r\n", b"\n", b"\r", b""]))
    return b"".join(parts)


@pytest.mark.parametrize("listener", ["smtp", "lmtp", "imap", "http", "managesieve", "pop3"])
def test_random_bytes_get_protocol_errors_and_the_listener_goes_on(server, listener):
    rng = random.Random(listener)
    address = server.address(listener)
    for _ in range(40):
        exchange(address, garbage(rng))
    if listener == "http":
        assert exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 200"
        )
    else:
        with socket.create_connection(address, timeout=5) as sock:
            assert sock.recv(100)  # the greeting: still serving


def imap_command(rng: random.Random) -> str:
    numbers = rng.choice(["1", "*", "1:*", "$", "2,4:7", str(2**33), "0", "5:2", "1," * 200 + "1"])
    keys = ["ALL", "SUBJECT hello", 'BODY "x"', "OR SEEN (NOT FLAGGED)", "LARGER 99999999999999"]
    keys += ["(" * 60 + "ALL" + ")" * 60, "$", "MODSEQ 5"]
    return rng.choice(IMAP_COMMANDS).format(
        s=numbers,
        p=rng.choice(["", "1", "1.2", "TEXT", "1.MIME", "2.1.HEADER", "99", "1.2.3.4.5.6.7.8"]),
        n=rng.choice([0, 1, 10, 2**63, 2**64]),
        k=rng.choice(keys),
        m=rng.choice(["X", '"a/b"', "INBOX", '""', "&AOk-", '"é"', "Trash", "x" * 300]),
    )


def test_mangled_imap_commands_after_login(server):
    rng = random.Random(1)
    address = server.address("imap")
    mime = (
        b"Subject: hello\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n--b--\r\n"
    )
    login = f"a LOGIN {ADMIN} {PASSWORD}\r\n".encode()
    for round_ in range(15):
        appends = b"".join(
            b"p%d APPEND INBOX {%d+}\r\n" % (n, len(mime)) + mime + b"\r\n" for n in range(2)
        )
        # A mailbox that holds messages (its own, none shared) is deleted with them.
        own = b"Subject: only in Old %d\r\n\r\nx\r\n" % round_
        old = b"c1 CREATE Old\r\nc2 APPEND Old {%d+}\r\n%s\r\nc3 COPY 1 Old\r\n" % (len(own), own)
        commands = "c4 DELETE Old\r\n" + "".join(f"t{n} {imap_command(rng)}\r\n" for n in range(20))
        reply = exchange(address, login + appends + b"b SELECT INBOX\r\n" + old + commands.encode())
        assert b"a OK" in reply and b"c4 OK" in reply, reply[:500]
        assert all(f"t{n} ".encode() in reply for n in range(20)), "every command answered"


POP3_COMMANDS = [
    "STAT", "LIST", "LIST {n}", "UIDL", "UIDL {n}", "RETR {n}", "TOP {n} {n}", "DELE {n}",
    "RSET", "NOOP", "CAPA", "AUTH {m}", "UTF8", "STLS", "USER {m}", "PASS {m}", "{m}", "APOP x y",
]  # fmt: skip


def test_mangled_pop3_commands_after_login(server):
    """Every reply a status line in order; the session ends with QUIT's or, after ten bad
    commands in a row, with its own goodbye; the messages deleted are gone over IMAP."""
    rng = random.Random(3)
    with _imap_admin(server) as client:
        for n in range(5):
            client.append("INBOX", None, None, b"Subject: pop %d\r\n\r\n.dot\r\n" % n)
        client.logout()
    address = server.address("pop3")
    for _ in range(15):
        commands = [
            rng.choice(POP3_COMMANDS).format(
                n=rng.choice(["1", "2", "0", "-1", "x", "99999999999", "²", "1 2", str(2**64)]),
                m=rng.choice(["PLAIN", "=", "*", "é" * 30, "x" * 300, "\x00", "LOGIN x"]),
            )
            for _ in range(20)
        ]
        login = f"USER {ADMIN}\r\nPASS {PASSWORD}\r\n"
        reply = exchange(address, (login + "\r\n".join(commands) + "\r\nQUIT\r\n").encode())
        statuses = [line for line in reply.split(b"\r\n") if line.startswith((b"+OK", b"-ERR"))]
        assert all(line.startswith(b"+OK") for line in statuses[:3]), reply[:300]
        assert b"signing off" in statuses[-1] or b"Too many bad" in statuses[-1], statuses[-3:]
        assert b"Traceback" not in reply


def test_random_admin_api_requests_never_get_a_500(server):
    rng = random.Random(2)
    host, port = server.address("http")
    credentials = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()

    def value(depth: int = 0):
        roll = rng.random()
        if depth > 2 or roll < 0.3:
            return rng.choice([None, True, -1, 2**70, 1.5, "", "x" * 5000, ADMIN, "é@ü.test"])
        if roll < 0.6:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        keys = ["address", "password", "targets", "quota-bytes", "name", "from", "to", "text"]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 6))}

    statuses = set()
    for _ in range(200):
        path = rng.choice(HTTP_PATHS).format(
            a=rng.choice(["bob@mx.example.test", ADMIN, "%00", "x%2Fy", "a" * 300]),
            d=rng.choice(["mx.example.test", "example.org", "..", "%ff"]),
            x=rng.choice(["nope", "%20", "x" * 100]),
            n=rng.choice(["1", "0", "-1", "99999999999999999999", "abc", "%C2%B2"]),
        )
        body = rng.choice([json.dumps(value()).encode(), b"", rng.randbytes(50), b"{" * 2000])
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request(
            rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE"]),
            path,
            body=body,
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status < 500, (path, response.status)
        statuses.add(response.status)
    assert {200, 400, 404} <= statuses  # the requests reached the handlers, not only the router


def api(server, method: str, path: str, body=None) -> tuple[int, dict]:
    """One admin API request on its own connection: (status, JSON body)."""
    host, port = server.address("http")
    credentials = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(
            method,
            path,
            body=None if body is None else json.dumps(body),
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


HOSTILE_DOMAINS = ["e.x/../../../../evil", "..", "a/b.example", "e\x01x.test", "x\r\ny.test"]
HOSTILE_ADDRESSES = [
    "../../etc/passwd@mx.example.test",
    "a\u0000b@mx.example.test",
    "crlf\r\nx@mx.example.test",
    "x@e.x/../../../../evil",
]


def test_hostile_names_over_the_api_are_refused_and_never_stored(server):
    """Field failures: a domain named like a path (whose DKIM key was then written outside the
    data directory) and addresses with "..", NUL or CRLF were all answered 201 and stored."""
    for name in HOSTILE_DOMAINS:
        status, answer = api(server, "POST", "/api/domains", {"name": name})
        assert status == 400 and "not a valid domain name" in answer["error"], (name, answer)
    for address in HOSTILE_ADDRESSES:
        for path, body in (
            ("/api/accounts", {"address": address, "password": "long-enough"}),
            ("/api/aliases", {"address": address, "targets": [ADMIN]}),
            ("/api/aliases", {"address": f"x@{ADMIN.partition('@')[2]}", "targets": [address]}),
        ):
            status, answer = api(server, "POST", path, body)
            assert status == 400 and answer["error"].startswith("body."), (path, body, answer)
    domains = {d["name"] for d in api(server, "GET", "/api/domains")[1]["domains"]}
    assert not domains & set(HOSTILE_DOMAINS)
    accounts = {a["address"] for a in api(server, "GET", "/api/accounts")[1]["accounts"]}
    assert not accounts & set(HOSTILE_ADDRESSES)
    assert not list((server.config_path.parent / "var").rglob("*evil*"))


def test_a_request_framed_by_content_length_and_chunked_is_refused_and_closed(server):
    """The smuggling edge: answered (by the chunked framing) on a connection that stayed
    open, so that a proxy reading Content-Length would see a different second request."""
    smuggled = b"GET /api/accounts HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        b"POST /api/domains HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(smuggled))
    ) + smuggled
    host, port = server.address("http")
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)  # and the stream stays open: the server must close it
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert received.count(b"HTTP/1.1 ") == 1


SASLPREP_REFUSED = ["nul\u0000password", "c1\u0083password", "ltr\u200epassword", "\u00ad" * 8]


def test_passwords_saslprep_refuses_are_422_not_500(server):
    """Field failure: each of these answered 500 on POST and PATCH /api/accounts."""
    for password in SASLPREP_REFUSED:
        status, answer = api(
            server, "POST", "/api/accounts", {"address": "p@mx.example.test", "password": password}
        )
        assert status == 422 and "SASLprep" in answer["error"], (password, answer)
        status, answer = api(server, "PATCH", f"/api/accounts/{ADMIN}", {"password": password})
        assert status == 422 and "SASLprep" in answer["error"], (password, answer)
    assert api(server, "GET", "/api/accounts/p@mx.example.test")[0] == 404
    assert api(server, "GET", "/api/accounts")[0] == 200  # the password did not change


# -- the connection-level field failures, as they were found ---------------------------------


def _imap_admin(server) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*server.address("imap"), timeout=30)
    client.login(ADMIN, PASSWORD)
    return client


def test_an_append_of_megabytes_completes(server):
    """It hung above ~300 KB: the literal was awaited whole while reading had stopped."""
    message = b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n"
    message *= 1_200_000 // len(message)
    with _imap_admin(server) as client:
        typ, answer = client.append("INBOX", None, None, message)
        assert typ == "OK", answer
        client.logout()


def test_a_login_literal_cannot_forge_a_log_line(server):
    """A user name holding CR LF and a well-formed log line was written as a log line of its
    own, and the real client address was dropped."""
    forged = "2026-01-01 00:00:00 INFO stalwart_py.imap [deadbeef] login ok from 203.0.113.66"
    user = f"x\r\n{forged}".encode()
    with socket.create_connection(server.address("imap"), timeout=10) as sock:
        sock.recv(1000)
        sock.sendall(b"a LOGIN {%d+}\r\n%s wrong-password\r\n" % (len(user), user))
        assert b"a NO" in _read_until(sock, b"a ")
    assert not any(line.startswith(forged) for line in server.log().splitlines())


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize(
    "header", [b"PROXY UNKNOWN\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"]
)
def test_a_proxy_header_without_a_client_is_not_a_relay_host(server, header):
    """The proxy is on loopback, loopback may relay: a header naming no client made anyone a
    relay host."""
    answer = exchange(
        server.address("smtp-proxied"),
        header + b"EHLO x\r\nMAIL FROM:<a@outside.example>\r\n"
        b"RCPT TO:<victim@elsewhere.example>\r\nQUIT\r\n",
    )
    assert b"554 5.7.1" in answer and b"\r\n250 2.1.5" not in answer, answer


def test_postmaster_is_accepted_from_a_stranger(server):
    answer = exchange(
        server.address("smtp"),
        b"EHLO x\r\nMAIL FROM:<a@outside.example>\r\nRCPT TO:<postmaster>\r\n"
        b"RCPT TO:<Postmaster@mx.example.test>\r\nQUIT\r\n",
    )
    assert answer.count(b"250 2.1.5") == 2, answer


def test_a_trickling_client_is_cut_off(server):
    """A byte every half second, far inside the idle timeout: cut at the command deadline."""
    started = time.monotonic()
    with socket.create_connection(server.address("smtp-proxied"), timeout=10) as sock:
        sock.sendall(b"PROXY TCP4 198.51.100.7 192.0.2.1 4000 25\r\n")
        sock.recv(1000)
        answer = b""
        for byte in b"EHLO a-trickling-client.example\r\n":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                answer += sock.recv(1000)
                break  # the server spoke before the line was complete: its goodbye
    assert answer.startswith(b"421"), answer
    assert time.monotonic() - started < 6


def test_the_data_directory_is_private(server):
    data_dir = server.config_path.parent / "var"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_empty_configuration_is_refused(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = stalwart_cli(empty, "check-config")
    assert result.returncode == 1 and "server.listener" in result.stderr, result.stderr
