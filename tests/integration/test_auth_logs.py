"""What refused logins and relay denials write to the log: one line each, in one format for
every protocol, that fail2ban's filter (deploy/fail2ban) matches and nothing a client sends can
forge.

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
from tests.support.refusals import (
    CONFIG,
    FORGED,
    INJECTED_USER,
    PASSWORD,
    USER,
    banned,
    imap_login_literal,
    refuse_everywhere,
)


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


def test_every_refusal_writes_one_line_that_the_fail2ban_filter_matches(server):
    with capture_log() as log:
        done = refuse_everywhere(server, USER)
    expected = list(done.values())
    assert banned(log.text_lines()) == expected, log.text
    assert banned(log.json_lines()) == expected
    by_logger = {
        (r.name, r.getMessage().split(": ", 1)[0]) for r in log.records if r.levelname == "INFO"
    }
    assert by_logger >= {
        ("stalwart_py.imap", "login failed from 10.0.0.11"),
        ("stalwart_py.imap", "login failed from 2001:db8::12"),
        ("stalwart_py.smtp", "login failed from 10.0.0.13"),
        ("stalwart_py.managesieve", "login failed from 10.0.0.14"),
        ("stalwart_py.http", "login failed from 10.0.0.15"),
        ("stalwart_py.smtp", "relay denied from 10.0.0.16"),
    }
    text = log.text
    assert "mechanism=LOGIN reason=invalid-credentials user=<alice@example.test>" in text
    assert "mechanism=PLAIN reason=invalid-credentials user=<alice@example.test>" in text
    assert "mechanism=BASIC reason=invalid-credentials user=<alice@example.test>" in text
    assert "sender=<someone@remote.test> recipient=<far@elsewhere.test>" in text


def test_a_forged_line_in_a_user_name_matches_nothing(server):
    """The forged line names 203.0.113.66: fail2ban must only ever see the real clients."""
    with capture_log() as log:
        done = refuse_everywhere(server, INJECTED_USER)
    assert_one_line_per_record(log)
    expected = list(done.values())
    assert banned(log.text_lines()) == expected, log.text
    assert banned(log.json_lines()) == expected
    assert "user=<nobody\\r\\n2030-01-01T00:00:00.000Z INFO  stalwart_py.imap" in log.text
