"""The outbound queue on two nodes sharing one PostgreSQL database: every node (and every
worker of a node) runs its queue, and the store's leases (``FOR UPDATE SKIP LOCKED``, see
``store/sqlite_queue.py``) keep them apart, so each message reaches the peer once; a node
killed mid-delivery leaves its message to the other once its lease lapses."""

from __future__ import annotations

import re
import signal
import smtplib
from pathlib import Path

import pytest

from tests.integration.test_workers_queue import outside, two_workers_queue
from tests.support.servers import WAIT, ServerProcess, write_config

pytest.importorskip("psycopg")

__all__ = ["outside"]  # the peer and DNS zone fixture, shared with the workers' queue tests


def node_configs(url: str, tmp_path: Path, queue: str, *, workers: int = 2) -> list[Path]:
    """Nodes a and b on the database ``url``, each with a data directory of its own and the
    queue settings ``queue`` (``two_workers_queue``)."""
    paths = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        storage = f'[storage]\ndata-dir = "{directory / "var"}"\nbackend = "postgresql"\n'
        text = storage + f'url = "{url}"\n' + queue.replace("workers = 2", f"workers = {workers}")
        paths.append(write_config(directory, text))
    return paths


@pytest.mark.parametrize("count", [40, pytest.param(200, marks=pytest.mark.heavy)])
def test_two_nodes_deliver_each_message_once(postgres, tmp_path, outside, count):
    zone, peer = outside
    paths = node_configs(postgres.database(), tmp_path, two_workers_queue(zone.port, peer.port))
    with ServerProcess(paths[0]) as a, ServerProcess(paths[1]) as b:
        for n in range(count):  # half accepted by each node
            host, port = (a, b)[n % 2].address("smtp")
            with smtplib.SMTP(host, port, timeout=WAIT) as client:
                data = f"Subject: {n}\r\nMessage-ID: <{n}@nodes.test>\r\n\r\nbody {n}\r\n"
                client.sendmail("alice@example.test", ["bob@remote.test"], data)
        peer.wait_for(count)
        for node in (a, b):  # what is under way finishes (or is left leased) before counting
            node.signal(signal.SIGTERM)
            assert node.wait_exit() == 0
    ids = [re.search(rb"Message-ID: <(\d+)@nodes", m.data).group(1) for m in peer.received]
    assert sorted(ids, key=int) == [str(n).encode() for n in range(count)]  # each once


def test_a_node_killed_mid_delivery_leaves_its_message_to_the_other(postgres, tmp_path, outside):
    zone, peer = outside
    queue = two_workers_queue(zone.port, peer.port).replace(
        'retry = ["1h"]', 'retry = ["1h"]\nlease-time = "3s"\npoll-interval = "1s"'
    )
    a_path, b_path = node_configs(postgres.database(), tmp_path, queue, workers=1)
    peer.stall_data = True
    with ServerProcess(a_path) as a:
        with smtplib.SMTP(*a.address("smtp"), timeout=WAIT) as client:
            client.sendmail("alice@example.test", ["bob@remote.test"], "Subject: x\r\n\r\nx\r\n")
        peer.wait_stalled()  # A delivers it: on the wire, its DATA not yet answered
        a.signal(signal.SIGKILL)
        a.wait_exit()
    peer.stall_data = False  # the dead node's transaction is answered 451: not received
    with ServerProcess(b_path) as b:
        [message] = peer.wait_for(1)  # once A's lease lapsed
        b.signal(signal.SIGTERM)
        assert b.wait_exit() == 0
    assert message.rcpt_tos == ["bob@remote.test"] and len(peer.received) == 1
