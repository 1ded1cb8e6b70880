"""``server.workers = 2``: a supervisor that binds once and two worker processes that accept.

Real processes throughout (``ServerProcess``): which worker the kernel hands a connection to is
read from the log, where every worker's line says ``worker=<index>``.
"""

from __future__ import annotations

import imaplib
import os
import re
import signal
import smtplib
import socket
import threading
import time
from pathlib import Path

import anyio
import pytest

from stalwart_py import cli
from tests.support.nodes import add_accounts, configured_store, node_config
from tests.support.servers import WAIT, ServerProcess, write_config

USER = "alice@example.test"
PASSWORD = "correct horse battery"


def workers_config(tmp_path: Path, extra: str = "", grace: str = "10s") -> Path:
    """Two workers with smtp, imap and http listeners and the account USER; ``extra``: more
    tables (listeners of a test's own, limits)."""
    text = node_config(
        ("smtp", "imap", "http"),
        workers=2,
        server=f'shutdown-timeout = "{grace}"\n',
        tables='[directory.throttle]\nfailure-delay = "10ms"\n' + extra,
    )
    path = write_config(tmp_path, text)
    add_accounts(path, [(USER, PASSWORD, False)], tmp_path)
    return path


def message(n: int) -> bytes:
    return (
        f"From: bob@example.org\r\nTo: {USER}\r\nSubject: {n}\r\n"
        f"Message-ID: <{n}@workers.test>\r\n\r\nmessage {n}\r\n"
    ).encode()


def worker_of(server: ServerProcess, local_port: int) -> int:
    """Which worker logged the connection from 127.0.0.1:<local_port> (served, refused, or
    closed after its TLS handshake: a TLS-ALPN-01 validation)."""
    pattern = re.compile(
        rf"(?:connection from|refused) 127\.0\.0\.1:{local_port}(?: on \S+)? .*worker=(\d+)"
    )
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if found := pattern.search(server.log()):
            return int(found.group(1))
        time.sleep(0.02)  # ok: the line is written as the session starts; poll the file
    raise AssertionError(f"no log line for the connection from port {local_port}")


def stored_message_ids(config: Path) -> list[str]:
    """The numbers of the messages in USER's INBOX, read from the store (either backend) of
    the server whose configuration file is ``config``."""

    async def read() -> list[str]:
        async with configured_store(config) as store:
            account = await store.get_account(USER)
            box = await store.get_mailbox(account.id, "INBOX")
            infos = await store.messages(box.id)
            blobs = await store.read_blobs([info.blob_id for info in infos])
        return [
            re.search(rb"Message-ID: <(\d+)@workers", blobs[i.blob_id]).group(1).decode()
            for i in infos
        ]

    return anyio.run(read)


def test_two_workers_share_the_sockets_bound_once(tmp_path):
    with ServerProcess(workers_config(tmp_path)) as server:
        pids = server.ready["workers"]
        assert len(pids) == 2 and server.process.pid not in pids
        host, port = server.address("smtp")
        seen: set[int] = set()
        for _ in range(40):
            with smtplib.SMTP(host, port, timeout=WAIT) as client:
                client.ehlo("client.test")
                seen.add(worker_of(server, client.sock.getsockname()[1]))
            if seen == {0, 1}:
                break
        assert seen == {0, 1}, "the kernel gave every connection to one worker"
        assert server.log().count("listener smtp (smtp) bound") == 2  # once per worker
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_killed_worker_is_replaced_and_nothing_acknowledged_is_lost(tmp_path):
    acknowledged: list[str] = []
    stop = threading.Event()

    def send_in_a_loop(address: tuple[str, int]) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with smtplib.SMTP(*address, timeout=WAIT) as client:
                    client.sendmail("bob@example.org", [USER], message(n))
                acknowledged.append(str(n))
            except (smtplib.SMTPException, OSError):
                pass  # a session of the killed worker: not acknowledged

    def wait_for_acknowledged(count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(acknowledged) < count:
            assert time.monotonic() < deadline, f"{len(acknowledged)} of {count} acknowledged"
            time.sleep(0.01)  # ok: polls the sender thread's list, within a deadline

    config = workers_config(tmp_path)
    with ServerProcess(config) as server:
        victim = server.ready["workers"][1]
        sender = threading.Thread(target=send_in_a_loop, args=(server.address("smtp"),))
        sender.start()
        try:
            wait_for_acknowledged(5)
            os.kill(victim, signal.SIGKILL)
            replaced = server.wait_event("worker-ready")
            assert replaced["index"] == 1 and replaced["pid"] != victim
            count = len(acknowledged)
            wait_for_acknowledged(count + 5)  # served on, by both
        finally:
            stop.set()
            sender.join()
        assert f"worker 1 (pid {victim}) killed by signal 9; starting another" in server.log()
    stored = stored_message_ids(config)
    assert sorted(set(acknowledged) - set(stored)) == []
    assert len(stored) == len(set(stored))


def test_the_supervisor_killed_takes_the_workers_with_it(tmp_path):
    with ServerProcess(workers_config(tmp_path)) as server:
        pids = server.ready["workers"]
        server.kill()
        deadline = time.monotonic() + WAIT
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _alive(pid)]
            time.sleep(0.02)  # ok: polling for exits of processes that are not our children
        assert alive == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped by its dead parent yet) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_idle_in_one_worker_is_woken_by_a_delivery_in_the_other(tmp_path):
    with ServerProcess(workers_config(tmp_path)) as server:
        imap = imaplib.IMAP4(*server.address("imap"), timeout=WAIT)
        imap.login(USER, PASSWORD)
        imap.select("INBOX")
        imap_worker = worker_of(server, imap.sock.getsockname()[1])
        tag = imap._new_tag().decode()
        imap.send(f"{tag} IDLE\r\n".encode())
        assert imap.readline().startswith(b"+ ")
        host, port = server.address("smtp")
        for n in range(1, 40):
            client = smtplib.SMTP(host, port, timeout=WAIT)
            smtp_worker = worker_of(server, client.sock.getsockname()[1])
            if smtp_worker == imap_worker:
                client.quit()
                continue
            client.sendmail("bob@example.org", [USER], message(n))
            acknowledged = time.monotonic()
            line = imap.readline()
            woken = time.monotonic()
            client.quit()
            break
        else:
            raise AssertionError("no SMTP connection reached the other worker")
        assert re.fullmatch(rb"\* \d+ EXISTS\r\n", line)
        assert woken - acknowledged < 0.1 * _slowness()
        imap.send(b"DONE\r\n")
        imap.logout()


def _slowness() -> float:
    """The latency bound scaled by the machine's load (8 sessions share 2 cores here)."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return max(1.0, load)


def test_sigterm_drains_every_worker(tmp_path):
    with ServerProcess(workers_config(tmp_path, grace="300ms")) as server:
        host, port = server.address("smtp")
        sessions = []
        for _ in range(4):
            sock = socket.create_connection((host, port), timeout=WAIT)
            sock.recv(1024)  # the greeting: the session is open
            sessions.append(sock)
        server.signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.wait_exit() == 0
        assert time.monotonic() - started < 0.3 + 5
        for sock in sessions:
            assert sock.recv(1024).startswith(b"421")
            sock.close()


def greet(address: tuple[str, int]) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(address, timeout=WAIT)
    return sock, sock.recv(1024)


def test_a_listener_limit_holds_across_both_workers(tmp_path):
    path = workers_config(tmp_path)
    text = path.read_text().replace(
        'bind = ["127.0.0.1:0"]\nprotocol = "smtp"',
        'bind = ["127.0.0.1:0"]\nprotocol = "smtp"\nmax-connections = 3',
    )
    path.write_text(text)
    with ServerProcess(path) as server:
        address = server.address("smtp")
        held: list[tuple[socket.socket, int]] = []
        for _ in range(60):
            sock, greeting = greet(address)
            if not greeting.startswith(b"220"):  # a closed one not yet counted out
                sock.close()
                time.sleep(0.05)  # ok: bounded retries while a closed session is counted out
                continue
            held.append((sock, worker_of(server, sock.getsockname()[1])))
            if len(held) == 3:
                if {worker for _, worker in held} == {0, 1}:
                    break
                held.pop(0)[0].close()
        assert {worker for _, worker in held} == {0, 1}
        refused_by = set()
        for _ in range(40):
            sock, greeting = greet(address)
            assert greeting.startswith(b"421"), greeting
            refused_by.add(worker_of(server, sock.getsockname()[1]))
            sock.close()
            if refused_by == {0, 1}:
                break
        assert refused_by == {0, 1}  # each worker counted the other's connections
        for sock, _ in held:
            sock.close()


def test_a_listener_disabled_in_one_worker_is_disabled_in_both(tmp_path):
    path = workers_config(tmp_path)
    with ServerProcess(path) as server:
        assert cli.main(["listener", "disable", "smtp", "--config", str(path)]) == 0
        refused_by = set()
        for _ in range(40):
            sock, greeting = greet(server.address("smtp"))
            assert greeting.startswith(b"421"), greeting
            refused_by.add(worker_of(server, sock.getsockname()[1]))
            sock.close()
            if refused_by == {0, 1}:
                break
        assert refused_by == {0, 1}
        assert cli.main(["listener", "enable", "smtp", "--config", str(path)]) == 0
        sock, greeting = greet(server.address("smtp"))
        assert greeting.startswith(b"220")
        sock.close()


def test_a_reload_is_applied_by_both_workers(tmp_path):
    path = workers_config(tmp_path)
    with ServerProcess(path) as server:
        address = server.address("smtp")
        path.write_text(path.read_text() + '\n[server.smtp]\nbanner = "reloaded twice"\n')
        assert cli.main(["reload", "--config", str(path)]) == 0
        event = server.wait_event("reloaded")
        assert event["pid"] == server.process.pid
        seen = set()
        for _ in range(40):
            sock, greeting = greet(address)
            assert greeting.endswith(b"reloaded twice\r\n"), greeting
            seen.add(worker_of(server, sock.getsockname()[1]))
            sock.close()
            if seen == {0, 1}:
                break
        assert seen == {0, 1}
        path.write_text(path.read_text() + "\n[server.smtp.unknown]\n")
        server.signal(signal.SIGHUP)  # the supervisor validates: refused once, for both
        assert server.wait_event("reload-failed")["errors"]
