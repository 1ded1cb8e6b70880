"""Per-client limits with ``server.workers = 2`` hold for the whole server: a client's
connections, failed logins and SMTP rate count together whichever worker serves them.

Real processes (``ServerProcess``); which worker served a connection is read from the log
(``worker_of``). Each test makes the limit bite in both workers: with per-worker counts a
worker that had seen fewer than the limit would let the client through. Last, in one process,
what happens when the shared listener table is full: one connection dropped, the server serving.
"""

from __future__ import annotations

import http.client
import imaplib
import os
import signal
import smtplib
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stalwart_py.shared import SLOTS
from tests.integration.test_workers import (
    PASSWORD,
    USER,
    greet,
    worker_of,
    workers_config,
)
from tests.support.clients import LineClient
from tests.support.servers import ServerProcess
from tests.support.smtp import CHECKS_OFF

# Connections tried until each worker has taken one. Which worker accepts is the kernel's
# choice: on a busy machine one worker may win dozens in a row (40 were once not enough).
ATTEMPTS = 400


def hold(address: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` open sessions (greeted with 220)."""
    held: list[socket.socket] = []
    for _ in range(40):
        sock, greeting = greet(address)
        if greeting.startswith(b"220"):
            held.append(sock)
            if len(held) == count:
                return held
        else:  # a closed one not yet counted out
            sock.close()
            time.sleep(0.05)  # ok: bounded retries while a closed session is counted out
    raise AssertionError(f"{len(held)} of {count} sessions opened")


def refused_by_both(server: ServerProcess, address: tuple[str, int], reason: str) -> None:
    """New connections get 421 from each worker, for ``reason``."""
    refused_by = set()
    for _ in range(ATTEMPTS):
        sock, greeting = greet(address)
        assert greeting.startswith(b"421"), greeting  # the other worker counted them too
        refused_by.add(worker_of(server, sock.getsockname()[1]))
        sock.close()
        if refused_by == {0, 1}:
            break
    assert refused_by == {0, 1}
    assert f"on limited: {reason}" in server.log()


LIMITED = """
[server.listener.limited]
bind = ["127.0.0.1:0"]
protocol = "smtp"
"""


@pytest.mark.parametrize(
    ("limit", "reason"),
    [
        ("max-connections-per-ip = 2", "ip-limit"),
        ('[server.listener.limited.peer."127.0.0.0/8"]\nmax-connections = 2', "peer-limit"),
    ],
)
def test_a_client_limit_holds_across_both_workers(tmp_path, limit, reason):
    with ServerProcess(workers_config(tmp_path, LIMITED + limit + "\n")) as server:
        address = server.address("limited")
        held = hold(address, 2)
        refused_by_both(server, address, reason)
        for sock in held:
            sock.close()


def test_a_dead_workers_connections_stop_counting(tmp_path):
    extra = LIMITED + "max-connections-per-ip = 2\n"
    with ServerProcess(workers_config(tmp_path, extra)) as server:
        address = server.address("limited")
        held = hold(address, 2)
        victim = worker_of(server, held[0].getsockname()[1])
        refused_by_both(server, address, "ip-limit")
        os.kill(server.ready["workers"][victim], signal.SIGKILL)
        assert server.wait_event("worker-ready")["index"] == victim
        # its sessions are gone, and with them its share of the count: room for new ones
        again = hold(address, 1)
        for sock in held + again:
            sock.close()


def test_failed_logins_in_both_workers_lock_the_pair_out_in_both(tmp_path):
    path = workers_config(tmp_path)
    path.write_text(
        path.read_text().replace(
            'failure-delay = "10ms"',
            'failure-delay = "10ms"\nmax-failures-per-address-and-account = 4\n'
            'block-time = "10m"\nmax-block-time = "1h"',
        )
    )
    with ServerProcess(path) as server:
        address = server.address("imap")
        failures = {0: 0, 1: 0}
        for _ in range(ATTEMPTS):
            imap = imaplib.IMAP4(*address, timeout=10)
            worker = worker_of(server, imap.sock.getsockname()[1])
            if failures[worker] < 2:
                with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                    imap.login(USER, "wrong password")
                failures[worker] += 1
            imap.logout()
            if failures == {0: 2, 1: 2}:
                break
        assert failures == {0: 2, 1: 2}
        refused_by = set()
        for _ in range(ATTEMPTS):
            imap = imaplib.IMAP4(*address, timeout=10)
            refused_by.add(worker_of(server, imap.sock.getsockname()[1]))
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                imap.login(USER, PASSWORD)  # the right one: not even checked
            imap.logout()
            if refused_by == {0, 1}:
                break
        assert refused_by == {0, 1}
        assert server.log().count("reason=throttled") >= 2
        # the failures outlive a worker: its replacement refuses as well
        os.kill(server.ready["workers"][1], signal.SIGKILL)
        assert server.wait_event("worker-ready")["index"] == 1
        refused_by = set()
        for _ in range(ATTEMPTS):
            imap = imaplib.IMAP4(*address, timeout=10)
            refused_by.add(worker_of(server, imap.sock.getsockname()[1]))
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                imap.login(USER, PASSWORD)
            imap.logout()
            if refused_by == {0, 1}:
                break
        assert refused_by == {0, 1}


def test_an_smtp_connection_rate_holds_across_both_workers(tmp_path):
    extra = (
        """
[server.listener.mx]
bind = ["127.0.0.1:0"]
protocol = "smtp"
smtp.relay-hosts = []
smtp.rate.connections-per-ip = 4
"""
        + CHECKS_OFF
    )
    with ServerProcess(workers_config(tmp_path, extra)) as server:
        address = server.address("mx")
        accepted_by = []
        refused_by = set()
        for _ in range(60):
            sock, greeting = greet(address)
            worker = worker_of(server, sock.getsockname()[1])
            sock.close()
            if len(accepted_by) < 4:
                assert greeting.startswith(b"220"), greeting
                accepted_by.append(worker)
                continue
            # four a minute for the whole server, whichever worker took the first four
            assert greeting.startswith(b"421 4.7.0"), greeting
            assert b"Too many connections from your address" in greeting
            refused_by.add(worker)
            if refused_by == {0, 1}:
                break
        assert refused_by == {0, 1}


def scrape(server: ServerProcess) -> tuple[int, dict[tuple[str, tuple], float]]:
    """/metrics over a new connection: (the worker that answered, every sample)."""
    connection = http.client.HTTPConnection(*server.address("http"), timeout=10)
    connection.connect()
    worker = worker_of(server, connection.sock.getsockname()[1])
    connection.request("GET", "/metrics")
    answer = connection.getresponse()
    assert answer.status == 200
    samples = {}
    for family in text_string_to_metric_families(answer.read().decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    connection.close()
    return worker, samples


def smtp_figures(samples: dict[tuple[str, tuple], float]) -> tuple[float, float]:
    labels = (("listener", "smtp"),)
    return (
        samples.get(("stalwart_connections_accepted_total", labels), 0.0),
        samples.get(("stalwart_connections_open", labels), 0.0),
    )


def test_metrics_are_the_servers_summed_over_both_workers(tmp_path):
    path = workers_config(tmp_path)
    path.write_text(
        path.read_text().replace(
            'protocol = "http"', 'protocol = "http"\nhttp.public-metrics = true'
        )
    )
    with ServerProcess(path) as server:
        address = server.address("smtp")
        served_by: list[int] = []
        while set(served_by) != {0, 1} or len(served_by) < 10:
            assert len(served_by) < 60, "the kernel gave every connection to one worker"
            with smtplib.SMTP(*address, timeout=10) as client:
                client.ehlo("client.test")
                served_by.append(worker_of(server, client.sock.getsockname()[1]))
        sessions = len(served_by)
        held = {}
        while set(held) != {0, 1}:  # one open session in each worker
            sock, greeting = greet(address)
            assert greeting.startswith(b"220")
            worker = worker_of(server, sock.getsockname()[1])
            if worker in held:
                sock.close()
                sessions += 1
            else:
                held[worker] = sock
        sessions += 2

        def figures_from_both(expected: tuple[float, float]) -> None:
            answered_by = set()
            deadline = time.monotonic() + 10
            while answered_by != {0, 1}:
                assert time.monotonic() < deadline, f"{answered_by} answered {expected}"
                worker, samples = scrape(server)
                if smtp_figures(samples) == expected:  # closed sessions are counted out late
                    answered_by.add(worker)  # ok: polls until both workers gave the figures

        figures_from_both((sessions, 2.0))
        victim = server.ready["workers"][1]
        os.kill(victim, signal.SIGKILL)
        assert server.wait_event("worker-ready")["index"] == 1
        # the dead worker's sessions counted still; its open one gone with it
        figures_from_both((sessions, 1.0))
        files = {path.name for path in (tmp_path / "var" / "run" / "metrics").iterdir()}
        assert "counter_folded.db" in files and f"counter_{victim}.db" not in files
        held[0].close()


def test_a_full_shared_listener_table_drops_a_connection_and_the_server_goes_on(
    start_server, caplog
):
    server = start_server("""
[server.listener.probe]
bind = ["127.0.0.1:0"]
protocol = "probe"
""")
    shared = server.registry.shared
    others = [f"elsewhere-{n}" for n in range(SLOTS)]
    with LineClient(server.address("probe")) as client:  # the probe's slot taken first
        assert "listener" in client.info()
    server.wait_until(lambda: server.registry.open_connections == 0)
    for name in others:  # every slot busy, the probe's taken over (it was idle)
        shared.enter(name)
    with LineClient(server.address("probe")) as dropped:
        assert dropped.readline() == b""
    assert "connection dropped: more than 64 listeners" in caplog.text
    shared.leave(others[0])
    with LineClient(server.address("probe")) as client:
        assert "listener" in client.info()
