"""IMAP sessions over real sockets: plain, STARTTLS and implicit TLS; CAPABILITY, LOGIN,
AUTHENTICATE (PLAIN with SASL-IR), the plaintext policy, ID, ENABLE, NAMESPACE, NOOP,
LOGOUT, literals and their limits, and bad input."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import ssl
from collections.abc import Callable

import aioimaplib
import pytest

from tests.integration.imap_support import (
    PASSWORD,
    USER,
    Raw,
    connect,
    connect_tls,
    login,
    start,
)
from tests.support.servers import METRICS_OF_ONE_WORKER


@pytest.fixture
def server(start_server, server_cert):
    return start(
        start_server,
        server_cert,
        "[server.imap]\nmax-bad-commands = 3\n\n"
        '[server.listener.impatient]\nbind = "127.0.0.1:0"\nprotocol = "imap"\n'
        'idle-timeout = "1s"\n',
    )


def test_greeting_and_capabilities_before_and_after_login(server):
    with Raw(server) as raw:
        assert raw.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS ")
        assert b"mail.example.test stalwart-py IMAP4rev2 ready" in raw.greeting
        untagged, tagged = raw.command("CAPABILITY")
        assert tagged == b"t1 OK CAPABILITY completed"
        caps = untagged[0].split()[2:]
        for cap in (b"AUTH=PLAIN", b"SASL-IR", b"LITERAL+", b"IDLE", b"UIDPLUS", b"MOVE"):
            assert cap in caps
        for cap in (b"CONDSTORE", b"QRESYNC", b"ESEARCH", b"QUOTA", b"APPENDLIMIT=52428800"):
            assert cap in caps
        assert b"LOGINDISABLED" not in caps  # this listener allows plaintext
        _, tagged = raw.command(f'LOGIN {USER} "{PASSWORD}"')
        assert tagged.startswith(b"t1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR ")
        assert b"STARTTLS" not in tagged and b"AUTH=" not in tagged
        assert tagged.endswith(b"] alice@example.test logged in")


def test_plaintext_login_waits_for_starttls(server, client_tls):
    with Raw(server, "imap-starttls") as raw:
        assert b"LOGINDISABLED" in raw.greeting
        assert b"AUTH=PLAIN" not in raw.greeting and b"AUTH=SCRAM-SHA-256" in raw.greeting
        _, tagged = raw.command(f'LOGIN {USER} "{PASSWORD}"')
        assert tagged == b"t1 NO [PRIVACYREQUIRED] Plaintext login is disabled until STARTTLS"
        _, tagged = raw.command("AUTHENTICATE PLAIN")
        assert tagged == b"t1 NO [PRIVACYREQUIRED] PLAIN is disabled until STARTTLS"
    client = connect(server, "imap-starttls")
    assert "LOGINDISABLED" in client.capabilities
    typ, _ = client.starttls(ssl_context=client_tls)
    assert typ == "OK"
    assert "LOGINDISABLED" not in client.capabilities and "STARTTLS" not in client.capabilities
    assert "AUTH=PLAIN" in client.capabilities
    assert client.login(USER, PASSWORD)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_implicit_tls_with_imaplib(server, client_tls):
    client = connect_tls(server, client_tls)
    assert "STARTTLS" not in client.capabilities
    assert client.login(USER, PASSWORD)[0] == "OK"
    assert client.noop()[0] == "OK"
    assert client.logout()[0] == "BYE"


def test_aioimaplib_plain_and_implicit_tls(server, client_tls):
    async def session(make: Callable[[], aioimaplib.IMAP4]) -> None:
        client = make()
        await client.wait_hello_from_server()
        response = await client.login(USER, PASSWORD)
        assert response.result == "OK"
        response = await client.select("INBOX")
        assert response.result == "OK"
        assert b"[READ-WRITE] SELECT completed" in response.lines[-1]
        response = await client.logout()
        assert response.result == "OK"

    host, port = server.address("imap")
    asyncio.run(session(lambda: aioimaplib.IMAP4(host, port, timeout=20)))
    host, port = server.address("imaps")
    asyncio.run(
        session(lambda: aioimaplib.IMAP4_SSL(host, port, timeout=20, ssl_context=client_tls))
    )


def test_authenticate_plain_with_and_without_initial_response(server):
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    with Raw(server) as raw:
        _, tagged = raw.command(f"AUTHENTICATE PLAIN {token}")
        assert tagged.startswith(b"t1 OK [CAPABILITY ")
    with Raw(server) as raw:
        raw.send("t2 AUTHENTICATE PLAIN\r\n")
        assert raw.line() == b"+ "
        raw.send(token + "\r\n")
        _, tagged = raw.until("t2")
        assert tagged.startswith(b"t2 OK ")
    with Raw(server) as raw:
        raw.send("t3 AUTHENTICATE PLAIN\r\n")
        assert raw.line() == b"+ "
        raw.send("*\r\n")
        assert raw.until("t3")[1] == b"t3 BAD Authentication cancelled"
        _, tagged = raw.command("AUTHENTICATE PLAIN not-base64!")
        assert tagged == b"t1 BAD SASL response is not valid base64"
        _, tagged = raw.command("AUTHENTICATE GSSAPI")
        assert tagged == b"t1 NO [CANNOT] Unsupported mechanism GSSAPI"
    client = connect(server)
    assert client.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())[0] == "OK"
    client.logout()


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_failed_logins_are_refused_counted_and_end_the_session(server):
    with Raw(server) as raw:
        for attempt in range(2):
            _, tagged = raw.command(f'LOGIN {USER} "wrong{attempt}"')
            assert tagged == b"t1 NO [AUTHENTICATIONFAILED] Authentication failed"
        raw.send(f't9 LOGIN {USER} "wrong again"\r\n')
        assert raw.line() == b"* BYE Too many failed logins"
    client = login(server)
    client.logout()
    metrics = server.context.metrics.render().decode()
    assert 'stalwart_imap_logins_total{listener="imap",result="failure"} 3.0' in metrics
    assert 'stalwart_imap_logins_total{listener="imap",result="success"} 1.0' in metrics


def test_any_state_commands(server):
    with Raw(server) as raw:
        untagged, tagged = raw.command('ID ("name" "pytest" "version" "1")')
        assert untagged == [b'* ID ("name" "stalwart-py" "vendor" "stalwart-py" "support-url" NIL)']
        assert tagged == b"t1 OK ID completed"
        assert raw.command("NOOP")[1] == b"t1 OK NOOP completed"
        assert raw.command("SELECT INBOX")[1] == (
            b"t1 BAD SELECT is not valid in the not authenticated state"
        )
        raw.login()
        untagged, _ = raw.command("ENABLE CONDSTORE QRESYNC IMAP4rev2 XYZZY")
        assert untagged == [b"* ENABLED CONDSTORE QRESYNC IMAP4rev2"]
        untagged, _ = raw.command("NAMESPACE")
        assert untagged == [b'* NAMESPACE (("" "/")) NIL NIL']
        assert raw.command("FETCH 1 FLAGS")[1] == (
            b"t1 BAD FETCH is not valid in the authenticated state"
        )
        assert (
            raw.command("LOGIN a b")[1] == b"t1 BAD LOGIN is not valid in the authenticated state"
        )
        untagged, tagged = raw.command("LOGOUT")
        assert untagged == [b"* BYE Logging out"]
        assert tagged == b"t1 OK LOGOUT completed"


def test_literals_are_framed_and_limited(server):
    with Raw(server) as raw:
        raw.send(f"t1 LOGIN {{{len(USER)}}}\r\n")
        assert raw.line() == b"+ Ready for literal data"
        raw.send(f'{USER} "{PASSWORD}"\r\n')
        assert raw.until("t1")[1].startswith(b"t1 OK")
        # LITERAL+: no continuation request
        _, tagged = raw.command(b"CREATE {6+}\r\nPlus+1")
        assert tagged == b"t1 OK CREATE completed"
        # a synchronizing literal over the command limit is refused before it is sent
        raw.send(b"t2 CREATE {100000}\r\n")
        assert raw.line() == b"t2 NO [TOOBIG] literal of 100000 octets is over the limit of 65536"
        assert raw.command("NOOP", "t3")[1] == b"t3 OK NOOP completed"
        # a non-synchronizing one cannot be skipped: BYE
        raw.send(b"t4 CREATE {100000+}\r\n")
        assert raw.line() == (b"* BYE [TOOBIG] literal of 100000 octets is over the limit of 65536")
    with Raw(server) as raw:
        raw.send(b"t1 NOOP " + b"x" * 70000 + b"\r\n")
        assert raw.line() == b"* BYE [TOOBIG] Command line too long"
    with Raw(server) as raw:  # a refusal to a command whose tag is not one is untagged
        raw.send("été CREATE {100000}\r\n".encode())
        assert raw.line() == b"* NO [TOOBIG] literal of 100000 octets is over the limit of 65536"
        assert raw.command("NOOP", "t5")[1] == b"t5 OK NOOP completed"


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_bad_commands_get_bad_and_too_many_end_the_session(server):
    with Raw(server) as raw:
        assert raw.command("FROBNICATE")[1] == b"t1 BAD unknown command FROBNICATE"
        assert raw.command('LOGIN "unterminated')[1] == (
            b"t1 BAD expected the end of the quoted string"
        )
        raw.send(b"\x00\xff garbage\r\n")
        assert raw.line() == b"* BAD missing or invalid tag"
        assert raw.line() == b"* BYE Too many invalid commands"
    metrics = server.context.metrics.render().decode()
    assert 'stalwart_imap_bad_commands_total{listener="imap"} 3.0' in metrics


def test_starttls_twice_and_pipelined_data_is_dropped(server, client_tls):
    with Raw(server, "imap-starttls") as raw:
        # a command pipelined after STARTTLS must not be run (CVE-2011-0411)
        raw.send("t1 STARTTLS\r\nt2 LOGIN x y\r\n")
        assert raw.line() == b"t1 OK Begin TLS negotiation now"
        raw.sock = client_tls.wrap_socket(raw.sock, server_hostname="mail.example.test")
        untagged, tagged = raw.command("CAPABILITY", "t3")
        assert tagged == b"t3 OK CAPABILITY completed"
        assert b"AUTH=PLAIN" in untagged[0]
        _, tagged = raw.command("STARTTLS", "t5")
        assert tagged == b"t5 BAD TLS is already active"


def test_imaplib_over_starttls_rejects_a_wrong_certificate(server):
    client = connect(server, "imap-starttls")
    with pytest.raises(ssl.SSLError):
        client.starttls(ssl_context=ssl.create_default_context())
    with pytest.raises(imaplib.IMAP4.abort):
        client.noop()


def test_a_client_that_never_logs_in_is_logged_out(server):
    with Raw(server, "impatient") as raw:
        # the listener's idle-timeout (1s) applies before login; the read waits for it
        assert raw.line() == b"* BYE Autologout: idle for too long"
        with pytest.raises(ConnectionError):
            raw.line()
