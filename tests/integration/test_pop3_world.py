"""POP3 the way the world uses it: a message of megabytes with lines that need byte-stuffing,
a client that sends a byte at a time with pauses, and fifty clients logging in at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.pop3 import PASSWORD, TIMEOUT, USER, config, connect, connect_tls, fill, login

MEGABYTES = 8


@pytest.fixture
def server(stalwart_servers):
    server = stalwart_servers.start(config(None), tls=True)
    server.add_account(USER, PASSWORD)
    return server


def test_a_message_of_megabytes_comes_back_byte_for_byte(server, stalwart_client_tls):
    line = b"x" * 70 + b"\r\n"
    dotted = b".a line that starts with a dot\r\n..two of them\r\n.\r\n"
    body = (line * 1000 + dotted) * (MEGABYTES * 1024 * 1024 // (len(line) * 1000 + len(dotted)))
    stored = b"From: a@example.org\r\nSubject: big\r\n\r\n" + body
    fill(server, [stored])
    client = connect_tls(server, stalwart_client_tls)
    try:
        client.user(USER)
        client.pass_(PASSWORD)
        assert client.stat() == (1, len(stored))
        _, lines, octets = client.retr(1)  # poplib removes the byte-stuffing
        assert octets == len(stored)
        assert b"\r\n".join(lines) + b"\r\n" == stored
        client.quit()
    finally:
        client.close()


def test_a_client_that_sends_a_byte_at_a_time_is_answered(server):
    fill(server, [b"From: a@example.org\r\nSubject: slow\r\n\r\nhello\r\n"])
    with socket.create_connection(server.address("pop3"), timeout=TIMEOUT) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        for command in (f"USER {USER}\r\n", f"PASS {PASSWORD}\r\n", "STAT\r\n"):
            for byte in command.encode():
                sock.sendall(bytes([byte]))
                time.sleep(0.02)  # ok: the pauses between bytes are what is tested
            answer = reader.readline()
            assert answer.startswith(b"+OK"), (command.split()[0], answer)
        assert answer.split()[1] == b"1"
        sock.sendall(b"QUIT\r\n")
        assert reader.readline().startswith(b"+OK")


def test_fifty_clients_log_in_at_once(server):
    accounts = [f"user{n}@example.test" for n in range(50)]
    for address in accounts:
        server.add_account(address, PASSWORD)
    fill(server, [b"From: a@example.org\r\nSubject: hello\r\n\r\nhello\r\n"], address=accounts[0])
    start = threading.Barrier(len(accounts), timeout=TIMEOUT)
    outcomes: dict[str, object] = {}

    def session(address: str) -> None:
        try:
            client = connect(server)
            start.wait()
            client.user(address)
            client.pass_(PASSWORD)
            outcomes[address] = client.stat()
            client.quit()
        except Exception as exc:  # recorded, and asserted on below
            outcomes[address] = exc

    threads = [threading.Thread(target=session, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert outcomes[accounts[0]] == (1, 46)
    assert all(outcomes[a] == (0, 0) for a in accounts[1:]), outcomes
    # and the one account stays lockable afterwards: every session released its maildrop
    client = login(server)
    client.quit()
