"""The test kit's servers with ``server.workers = 2`` (stalwart_py/testing/workers.py): worker 0
in the test process, a sibling worker process on the same sockets, sharing what a supervisor's
workers share. These run whatever ``--server-workers`` says: the configuration sets workers."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import time

from tests.support.nodes import node_config
from tests.support.servers import WAIT

USER, PASSWORD = "alice@example.test", "kit password"

CONFIG = node_config(
    ("smtp", "imap"), workers=2, listener_keys={"smtp": "max-connections-per-ip = 1"}
)


def worker_of(server, caplog, local_port: int) -> str:
    """Which process logged the connection from 127.0.0.1:``local_port`` (accepted or
    refused): the sibling in its log file, worker 0 in this process's records."""
    line = re.compile(rf"127\.0\.0\.1:{local_port} on \w+")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if line.search(server.siblings.log(1)):
            return "sibling"
        if any(line.search(record.getMessage()) for record in caplog.records):
            return "worker 0"
        time.sleep(0.02)  # ok: the sibling writes its line as the session starts
    raise AssertionError(f"no worker logged the connection from port {local_port}")


def test_a_sibling_serves_what_worker_0_stored_and_per_ip_limits_span_both(start_server, caplog):
    caplog.set_level("DEBUG", logger="stalwart_py")
    server = start_server(CONFIG)
    assert server.siblings is not None and len(server.siblings.processes) == 1
    server.add_account(USER, PASSWORD)  # through worker 0, in this process

    # Connections land in both processes; each logs in with what worker 0 stored.
    seen: set[str] = set()
    for _ in range(40):
        client = imaplib.IMAP4(*server.address("imap"), timeout=WAIT)
        seen.add(worker_of(server, caplog, client.sock.getsockname()[1]))
        client.login(USER, PASSWORD)
        client.logout()
        if len(seen) == 2:
            break
    assert seen == {"sibling", "worker 0"}, "the kernel gave every connection to one worker"

    # max-connections-per-ip = 1 over both: with one SMTP session open, a further one is
    # refused with 421 whichever worker it lands in, the held session's or the other.
    with smtplib.SMTP(*server.address("smtp"), timeout=WAIT) as held:
        held.ehlo("held.test")
        refused_by: set[str] = set()
        for _ in range(40):
            with socket.create_connection(server.address("smtp"), timeout=WAIT) as refused:
                greeting = refused.makefile("rb").readline()
                assert greeting.startswith(b"421 "), greeting
                refused_by.add(worker_of(server, caplog, refused.getsockname()[1]))
            if len(refused_by) == 2:
                break
        assert refused_by == {"sibling", "worker 0"}
