"""What refused logins write to the log: one line each, that nothing a client sends can forge.

The field failure: an IMAP LOGIN whose user name was a literal holding CR LF and a made-up log
line (``a LOGIN {131+}``, a non-synchronizing literal) wrote that line into the log as if the
server had; so did a CR LF in an HTTP Basic user name. Every client here comes through a
PROXY header from a trusted proxy, so that each can stand for another address.
"""

from __future__ import annotations

import base64

import pytest

from tests.support.clients import LineClient
from tests.support.http import basic
from tests.support.logs import CapturedLog, capture_log
from tests.support.proxied import ProxiedHTTP, proxy_header

PASSWORD = "correct horse battery"
USER = "alice@example.test"

CONFIG = """
[server]
hostname = "mail.example.test"
proxy.trusted-networks = ["127.0.0.0/8"]

[directory.throttle]
failure-delay = 0

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.allow-plaintext = true

[server.listener.managesieve]
bind = "127.0.0.1:0"
protocol = "managesieve"
managesieve.auth.require-tls = false

[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
http.allow-plaintext-from = ["0.0.0.0/0", "::/0"]
"""

# What an attacker would have the log say: a well-formed line blaming someone else.
FORGED = (
    "2030-01-01T00:00:00.000Z INFO  stalwart_py.imap [0badf00d] "
    "login failed from 203.0.113.66: mechanism=LOGIN reason=invalid-credentials user=<admin>"
)
INJECTED_USER = f"nobody\r\n{FORGED}\r\n"


@pytest.fixture
def server(start_server):
    server = start_server(CONFIG)
    server.add_account(USER, PASSWORD)
    return server


def assert_one_line_per_record(log: CapturedLog) -> None:
    assert len(log.records) > 0
    assert len(log.text_lines()) == len(log.records), log.text
    assert len(log.json_lines()) == len(log.records)
    assert not any(line.startswith(FORGED[:30]) for line in log.text_lines()), log.text


def imap_login_literal(server, client: str, user: bytes, password: bytes) -> bytes:
    """``a1 LOGIN {n+}`` with the user name as a non-synchronizing literal (LITERAL+); the
    tagged answer."""
    host, port = server.address("imap")
    with LineClient((host, port), prelude=proxy_header(client, port)) as imap:
        assert imap.readline().startswith(b"* OK")
        imap.send(b"a1 LOGIN {%d+}\r\n%s %s\r\n" % (len(user), user, password))
        answer = imap.readline()
        while answer.startswith(b"*"):
            answer = imap.readline()
        return answer


def test_a_crlf_in_an_imap_login_literal_forges_no_log_line(server):
    with capture_log() as log:
        answer = imap_login_literal(server, "10.0.0.1", INJECTED_USER.encode(), b"wrong")
    assert answer.startswith(b"a1 NO [AUTHENTICATIONFAILED]")
    assert_one_line_per_record(log)


def test_a_crlf_in_an_http_basic_user_name_forges_no_log_line(server):
    host, port = server.address("http")
    with capture_log() as log:
        client = ProxiedHTTP("10.0.0.1", host, port)
        client.request("GET", "/api/domains", headers={"Authorization": basic(INJECTED_USER, "x")})
        answer = client.getresponse()
        answer.read()
        client.close()
    assert answer.status == 401
    assert_one_line_per_record(log)


def test_a_crlf_in_a_sasl_user_name_forges_no_log_line(server):
    """The same through AUTHENTICATE PLAIN, whose user name travels in base64."""
    plain = base64.b64encode(f"\0{INJECTED_USER}\0wrong".encode())
    host, port = server.address("imap")
    with (
        capture_log() as log,
        LineClient((host, port), prelude=proxy_header("10.0.0.1", port)) as imap,
    ):
        imap.readline()
        imap.send(b"a1 AUTHENTICATE PLAIN " + plain + b"\r\n")
        assert imap.readline().startswith(b"a1 NO [AUTHENTICATIONFAILED]")
    assert_one_line_per_record(log)
