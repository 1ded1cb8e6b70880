"""ManageSieve on the wire (RFC 5804), byte for byte, with a raw socket client."""

from __future__ import annotations

import base64

import pytest

from stalwart_py.sieve import EXTENSIONS
from tests.support.managesieve import PASSWORD, SieveLineClient, config
from tests.unit.test_sasl import ScramClient

PLAIN = base64.b64encode(f"\0bob@example.test\0{PASSWORD}".encode())


@pytest.fixture
def server(stalwart_servers):
    server = stalwart_servers.start(
        config(extra="managesieve.auth.require-tls = false\nmanagesieve.max-bad-commands = 3\n")
    )
    server.add_account("bob@example.test", PASSWORD)
    return server


def client(server) -> SieveLineClient:
    connection = SieveLineClient(server.address("managesieve"))
    greeting = connection.response()
    assert greeting[-1] == b'OK "stalwart-py ManageSieve ready"\r\n'
    return connection


def login(server) -> SieveLineClient:
    connection = client(server)
    assert connection.command(b'AUTHENTICATE "PLAIN" "' + PLAIN + b'"') == [
        b'OK "Authenticated"\r\n'
    ]
    return connection


def test_greeting_lists_the_capabilities(server):
    with SieveLineClient(server.address("managesieve")) as connection:
        assert connection.response() == [
            b'"IMPLEMENTATION" "stalwart-py 0.1.0"\r\n',
            b'"SASL" "PLAIN LOGIN SCRAM-SHA-256"\r\n',
            b'"SIEVE" "' + " ".join(EXTENSIONS).encode() + b'"\r\n',
            b'"NOTIFY" "mailto"\r\n',
            b'"STARTTLS"\r\n',
            b'"MAXREDIRECTS" "4"\r\n',
            b'"VERSION" "1.0"\r\n',
            b'"UNAUTHENTICATE"\r\n',
            b'OK "stalwart-py ManageSieve ready"\r\n',
        ]


def test_authentication_needs_tls_by_default(start_server):
    server = start_server(config())
    server.add_account("bob@example.test", PASSWORD)
    with SieveLineClient(server.address("managesieve")) as connection:
        assert b'"SASL" ""\r\n' in connection.response()
        assert connection.command(b'AUTHENTICATE "PLAIN" "' + PLAIN + b'"') == [
            b'NO (ENCRYPT-NEEDED) "use STARTTLS before authenticating"\r\n'
        ]


def test_sasl_continuations_as_strings_and_literals(server):
    with client(server) as connection:
        connection.send(b'AUTHENTICATE "PLAIN"\r\n')
        assert connection.readline() == b'""\r\n'  # the empty challenge of PLAIN
        connection.send(b"{%d+}\r\n" % len(PLAIN) + PLAIN + b"\r\n")
        assert connection.response() == [b'OK "Authenticated"\r\n']
        capability = connection.command(b"CAPABILITY")
        assert b'"OWNER" "bob@example.test"\r\n' in capability
        assert capability[-1] == b'OK "Capability completed"\r\n'
    with client(server) as connection:
        connection.send(b'AUTHENTICATE "LOGIN"\r\n')
        assert connection.readline() == b'"VXNlcm5hbWU6"\r\n'  # "Username:"
        connection.send(b'"' + base64.b64encode(b"bob@example.test") + b'"\r\n')
        assert connection.readline() == b'"UGFzc3dvcmQ6"\r\n'
        connection.send(b'"*"\r\n')
        assert connection.response() == [b'NO "Authentication aborted"\r\n']
        assert connection.command(b'AUTHENTICATE "PLAIN" "!!!"') == [
            b'NO "SASL response is not valid base64"\r\n'
        ]
        assert connection.command(b'AUTHENTICATE "X-UNKNOWN"') == [
            b'NO "unsupported mechanism X-UNKNOWN"\r\n'
        ]


def test_commands_need_authentication_and_unauthenticate(server):
    with client(server) as connection:
        assert connection.command(b"LISTSCRIPTS") == [
            b'NO "LISTSCRIPTS needs authentication first"\r\n'
        ]
    with login(server) as connection:
        assert connection.command(b"UNAUTHENTICATE") == [b'OK "Unauthenticate completed"\r\n']
        assert connection.command(b"LISTSCRIPTS")[0].startswith(b"NO")


def test_literals_both_forms_and_getscript(server):
    script = b'require "fileinto";\r\nfileinto "A";\r\n'
    with login(server) as connection:
        command = b'PUTSCRIPT "a" {%d}\r\n' % len(script) + script
        assert connection.command(command) == [b'OK "Putscript completed"\r\n']
        command = b"PUTSCRIPT {1+}\r\nb {%d+}\r\n" % len(script) + script
        assert connection.command(command) == [b'OK "Putscript completed"\r\n']
        assert connection.command(b'GETSCRIPT "b"') == [
            b"{%d}\r\n" % len(script),
            script,
            b"\r\n",
            b'OK "Getscript completed"\r\n',
        ]
        assert connection.command(b'SETACTIVE "b"') == [b'OK "Setactive completed"\r\n']
        assert connection.command(b"LISTSCRIPTS") == [
            b'"a"\r\n',
            b'"b" ACTIVE\r\n',
            b'OK "Listscripts completed"\r\n',
        ]
        assert connection.command(b'DELETESCRIPT "b"') == [
            b'NO (ACTIVE) "the active script cannot be deleted"\r\n'
        ]
        assert connection.command(b'RENAMESCRIPT "a" "b"') == [
            b'NO (ALREADYEXISTS) "a script b already exists"\r\n'
        ]
        assert connection.command(b'GETSCRIPT "zz"') == [
            b'NO (NONEXISTENT) "there is no script zz"\r\n'
        ]
        assert connection.command(b'PUTSCRIPT "bad/name" "keep;"') == [
            b"NO \"invalid script name 'bad/name'\"\r\n"
        ]
        assert connection.command(b'HAVESPACE "c" 100') == [b'OK "Putscript would succeed"\r\n']
        assert connection.command(b'CHECKSCRIPT "keep"') == [
            b'NO "line 1, column 5: expected \\";\\" or \\"{\\" after \\"keep\\", found the end'
            b' of the script"\r\n'
        ]


def test_noop_logout_and_bad_commands(server):
    with client(server) as connection:
        assert connection.command(b'NOOP "tag-1"') == [b'OK (TAG "tag-1") "Done"\r\n']
        assert connection.command(b"NOOP") == [b'OK "Done"\r\n']
        assert connection.command(b"FROB") == [b'NO "unknown command FROB"\r\n']
        assert connection.command(b'"quoted"') == [b'NO "expected a command name"\r\n']
        assert connection.command(b"FROB") == [b'BYE "Too many bad commands"\r\n']
        assert connection.readline() == b""
    with client(server) as connection:
        assert connection.command(b'PUTSCRIPT "a" "unterminated') == [
            b'NO "unterminated quoted string"\r\n'
        ]
        assert connection.command(b"LOGOUT") == [b'OK "Logout completed"\r\n']
        assert connection.readline() == b""
    with client(server) as connection:
        connection.send(b"NOOP " + b"x" * 10000 + b"\r\n")
        assert connection.response() == [b'BYE "command longer than 8192 bytes"\r\n']


def test_refusal_and_idle_timeout(start_server):
    server = start_server(config(extra='max-connections = 1\nidle-timeout = "1s"\n'))
    with SieveLineClient(server.address("managesieve")) as first:
        assert first.response()[-1].startswith(b"OK")
        with SieveLineClient(server.address("managesieve")) as second:
            assert second.response() == [
                b'BYE (TRYLATER) "Too many connections, try again later"\r\n'
            ]
        # Nothing sent for the idle timeout: the server says why it closes.
        assert first.response() == [b'BYE (TRYLATER) "Disconnected for inactivity"\r\n']
        assert first.readline() == b""


def test_scram_sha_256_over_the_wire(server):
    scram = ScramClient("bob@example.test", PASSWORD)
    with client(server) as connection:
        first = base64.b64encode(scram.first())
        connection.send(b'AUTHENTICATE "SCRAM-SHA-256" "' + first + b'"\r\n')
        server_first = base64.b64decode(connection.readline().strip().strip(b'"'))
        connection.send(b'"' + base64.b64encode(scram.final(server_first)) + b'"\r\n')
        server_final = base64.b64decode(connection.readline().strip().strip(b'"'))
        assert server_final == scram.expected_final  # the server proved it knows the key
        connection.send(b'""\r\n')
        assert connection.response() == [b'OK "Authenticated"\r\n']
