"""The outbound queue with ``server.workers = 2``: one worker holds the queue's lease and
delivers; messages accepted by either worker are delivered once each."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import time

import pytest

from tests.support.mail_peers import Peer, ZoneServer, background_loop
from tests.support.nodes import node_config, queue_tables, storage_of
from tests.support.servers import WAIT, ServerProcess, write_config

MX_ADDRESS = "127.0.0.13"
COUNT = 30


@pytest.fixture
def outside():
    with background_loop() as portal:
        zone = ZoneServer({"remote.test": [("MX", "10 mx.remote.test.")]})
        zone.add("mx.remote.test", "A", MX_ADDRESS)
        portal.call(zone.start)
        peer = Peer()
        portal.call(peer.start, MX_ADDRESS)
        yield zone, peer
        portal.call(peer.stop)
        portal.call(zone.close)


def two_workers_queue(dns_port: int, peer_port: int) -> str:
    """Two workers, a queue that sends to the peer and asks the zone's name server."""
    return node_config(
        ("smtp",),
        hostname="mail.example.test",
        workers=2,
        server='shutdown-timeout = "1s"\n',
        tables=queue_tables(peer_port, dns_port),
    )


def test_the_queue_delivers_each_message_once_with_two_workers(tmp_path, outside):
    zone, peer = outside
    path = write_config(tmp_path, two_workers_queue(zone.port, peer.port))
    with ServerProcess(path) as server:
        host, port = server.address("smtp")
        for n in range(COUNT):  # one connection each: the kernel spreads them over both
            with smtplib.SMTP(host, port, timeout=WAIT) as client:
                data = f"Subject: {n}\r\nMessage-ID: <{n}@queue.test>\r\n\r\nbody {n}\r\n"
                client.sendmail("alice@example.test", ["bob@remote.test"], data)
        peer.wait_for(COUNT)
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        log = server.log()
    ids = [re.search(rb"Message-ID: <(\d+)@queue", m.data).group(1) for m in peer.received]
    assert sorted(ids, key=int) == [str(n).encode() for n in range(COUNT)]  # each once
    accepted_by = set(re.findall(r"connection from 127\.0\.0\.1:\d+ on smtp .*worker=(\d)", log))
    assert accepted_by == {"0", "1"}
    # One runner holds the data directory's lease on SQLite; on PostgreSQL every process runs
    # its queue, kept apart by leases on the rows (singleton.py), and none takes that lease.
    runners = 1 if storage_of(path).backend == "sqlite" else 0
    assert len(re.findall(r"process \d+ runs the queue", log)) == runners


@pytest.mark.own_store_backend(
    "the leases killed here are flocks of the data directory; on PostgreSQL the queue has no "
    "such lease and ACME's is an advisory lock (test_store_pg_nodes: it passes on at its "
    "holder's end)"
)
def test_the_singletons_pass_to_another_worker_when_their_holder_is_killed(tmp_path, outside):
    """The queue's and the ACME renewals' leases are flocks: SIGKILL releases them, another
    worker takes them within a poll and the queue delivers what the dead holder left."""
    zone, peer = outside
    path = write_config(tmp_path, two_workers_queue(zone.port, peer.port))
    holders = re.compile(r"process (\d+) runs the (queue|acme)")
    with ServerProcess(path) as server:
        workers = server.ready["workers"]
        first = wait_for_holders(server, holders, 2)
        assert {name for _, name in first} == {"queue", "acme"}
        victim = int(next(pid for pid, name in first if name == "queue"))
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        # the survivor (or the replacement) holds both leases the victim held
        taken = wait_for_holders(server, holders, 2 + sum(pid == str(victim) for pid, _ in first))
        after = {name: int(pid) for pid, name in taken[len(first) :]}
        assert after.get("queue", victim) != victim
        host, port = server.address("smtp")
        with smtplib.SMTP(host, port, timeout=WAIT) as client:
            client.sendmail(
                "alice@example.test", ["bob@remote.test"], "Subject: after\r\n\r\nx\r\n"
            )
        peer.wait_for(1)


def wait_for_holders(
    server: ServerProcess, pattern: re.Pattern[str], count: int
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + WAIT
    while len(found := pattern.findall(server.log())) < count:
        assert time.monotonic() < deadline, f"{found}: fewer than {count} lease holders logged"
        time.sleep(0.05)  # ok: the takeover is logged by the process that takes the lease
    return found
