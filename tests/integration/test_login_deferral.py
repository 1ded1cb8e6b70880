"""A login deferred because every hash worker is busy (stalwart_py.hash_pool), in every
protocol: a "try again later" answer, a WARNING that fail2ban's filter does not match, and the
right password accepted as soon as a worker is free. Each client comes through a PROXY header
from its own address, so that the log lines can be told apart."""

from __future__ import annotations

import imaplib

import pytest

from tests.support.clients import LineClient
from tests.support.hash_pool import hash_pool_held
from tests.support.http import basic
from tests.support.logs import capture_log
from tests.support.proxied import ProxiedHTTP, ProxiedIMAP, ProxiedSMTP, proxy_header
from tests.support.refusals import CONFIG, PASSWORD, USER, banned, plain

DEFERRING = (
    CONFIG
    + """
[directory]
max-concurrent-hashes = 1
max-hash-wait = "20ms"
"""
)


@pytest.fixture
def server(start_server):
    server = start_server(DEFERRING)
    server.add_account(USER, PASSWORD, is_admin=True)
    return server


def imap_authenticate(server, address: str) -> str:
    with ProxiedIMAP(address, *server.address("imap")) as imap:
        try:
            imap.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
        except imaplib.IMAP4.error as error:
            return f"NO {error}"
        return "OK"


def smtp_auth(server, address: str) -> tuple[int, bytes]:
    with ProxiedSMTP(address, *server.address("submission")) as smtp:
        smtp.ehlo("client.test")
        return smtp.docmd("AUTH", "PLAIN " + plain(USER, PASSWORD))


def sieve_auth(server, address: str) -> bytes:
    _, port = server.address("managesieve")
    with LineClient(("127.0.0.1", port), prelude=proxy_header(address, port)) as sieve:
        while not sieve.readline().startswith(b"OK"):
            pass
        sieve.send(b'AUTHENTICATE "PLAIN" "%s"\r\n' % plain(USER, PASSWORD).encode())
        return sieve.readline()


def http_get(server, address: str) -> tuple[int, str | None]:
    client = ProxiedHTTP(address, *server.address("http"))
    client.request("GET", "/api/domains", headers={"Authorization": basic(USER, PASSWORD)})
    answer = client.getresponse()
    answer.read()
    client.close()
    return answer.status, answer.getheader("Retry-After")


def test_every_protocol_defers_while_the_pool_is_busy_and_accepts_after(server):
    with hash_pool_held(server), capture_log() as log:
        assert imap_authenticate(server, "10.0.0.21").startswith("NO [UNAVAILABLE]")
        code, text = smtp_auth(server, "10.0.0.22")
        assert (code, text[:6]) == (454, b"4.7.0 ")
        assert sieve_auth(server, "10.0.0.24").startswith(b"NO (TRYLATER)")
        status, retry_after = http_get(server, "10.0.0.25")
        assert status == 429
        assert retry_after is not None and int(retry_after) >= 1
    lines = {
        (r.name, r.levelname, r.getMessage().split(": ", 1)[0])
        for r in log.records
        if "deferred" in r.getMessage()
    }
    assert lines == {
        ("stalwart_py.imap", "WARNING", "login deferred from 10.0.0.21"),
        ("stalwart_py.smtp", "WARNING", "login deferred from 10.0.0.22"),
        ("stalwart_py.managesieve", "WARNING", "login deferred from 10.0.0.24"),
        ("stalwart_py.http", "WARNING", "login deferred from 10.0.0.25"),
    }
    assert banned(log.text_lines()) == [] and banned(log.json_lines()) == []
    # The pool free again: the same clients, the same password, accepted.
    assert imap_authenticate(server, "10.0.0.21") == "OK"
    assert smtp_auth(server, "10.0.0.22")[0] == 235
    assert sieve_auth(server, "10.0.0.24").startswith(b"OK")
    assert http_get(server, "10.0.0.25")[0] == 200
