"""The login throttle over real protocols: a burst of wrong passwords from one address neither
locks the account for other addresses nor extends its own block by trying on.

The field failure: ten failures from any address locked an account for everyone for five
minutes, and in SMTP AUTH and ManageSieve every attempt refused as throttled counted as a new
failure. Clients come through a PROXY header from a trusted proxy, each as its own address;
the throttle's clock is a fake one that the test moves, so no test waits for a block to end.
"""

from __future__ import annotations

import imaplib
import ipaddress
import re

import pytest

from tests.support.clients import LineClient
from tests.support.logs import capture_log
from tests.support.proxied import ProxiedIMAP, ProxiedSMTP, proxy_header
from tests.support.refusals import CONFIG, PASSWORD, USER, plain


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(start_server):
    server = start_server(CONFIG)
    server.add_account(USER, PASSWORD)
    server.add_account("bob@example.test", PASSWORD)
    return server


@pytest.fixture
def clock(server) -> Clock:
    clock = Clock()
    server.context.directory.throttle.clock = clock
    return clock


def imap_login(server, client: str, user: str, password: str) -> str:
    """Log in over IMAP from ``client``: "ok", or the response code of the NO."""
    with ProxiedIMAP(client, *server.address("imap")) as imap:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error as error:
            code = re.search(r"\[([A-Z-]+)\]", str(error))
            return code.group(1) if code else str(error)
        imap.logout()
        return "ok"


def test_a_burst_from_one_address_does_not_lock_the_account_for_another(server, clock):
    with capture_log() as log:
        burst = [imap_login(server, "10.0.0.1", USER, "wrong") for _ in range(12)]
        assert imap_login(server, "10.0.0.2", USER, PASSWORD) == "ok"
        assert imap_login(server, "10.0.0.1", USER, PASSWORD) == "UNAVAILABLE"  # still blocked
        assert imap_login(server, "10.0.0.1", "bob@example.test", PASSWORD) == "ok"
    assert burst == ["AUTHENTICATIONFAILED"] * 5 + ["UNAVAILABLE"] * 7
    throttled = [line for line in log.text_lines() if "reason=throttled" in line]
    assert len(throttled) == 8 and all("login failed from 10.0.0.1: " in t for t in throttled)
    clock.now += 1.0  # the first block is block-time, 1 s: the 8 refusals did not extend it
    assert imap_login(server, "10.0.0.1", USER, PASSWORD) == "ok"


def test_smtp_auth_attempts_refused_as_throttled_do_not_extend_the_block(server, clock):
    throttle = server.context.directory.throttle
    with ProxiedSMTP("10.0.0.3", *server.address("submission")) as smtp:
        smtp.ehlo("client.test")
        codes = [smtp.docmd("AUTH", "PLAIN " + plain(USER, "wrong"))[0] for _ in range(5)]
        assert codes == [535] * 5
        refused = [smtp.docmd("AUTH", "PLAIN " + plain(USER, "wrong")) for _ in range(10)]
        assert set(refused) == {(454, b"4.7.0 Too many failed logins, try again later")}
        assert smtp.docmd("AUTH", "PLAIN " + plain(USER, PASSWORD))[0] == 454
        assert throttle.wait(ipaddress.ip_address("10.0.0.3"), USER) == 1.0  # not extended
        clock.now += 1.0
        assert smtp.docmd("AUTH", "PLAIN " + plain(USER, PASSWORD))[0] == 235


def test_managesieve_attempts_refused_as_throttled_do_not_extend_the_block(server, clock):
    _, port = server.address("managesieve")
    with LineClient(("127.0.0.1", port), prelude=proxy_header("10.0.0.4", port)) as sieve:

        def authenticate(password: str) -> bytes:
            sieve.send(b'AUTHENTICATE "PLAIN" "%s"\r\n' % plain(USER, password).encode())
            return sieve.readline()

        while not sieve.readline().startswith(b"OK"):
            pass
        assert [authenticate("wrong")[:2] for _ in range(5)] == [b"NO"] * 5
        for _ in range(10):
            assert authenticate("wrong").startswith(b"NO (TRYLATER)")
        assert authenticate(PASSWORD).startswith(b"NO (TRYLATER)")
        clock.now += 1.0
        assert authenticate(PASSWORD).startswith(b"OK")
