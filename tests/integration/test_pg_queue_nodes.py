"""The outbound queue on two nodes sharing one PostgreSQL database: every node (and every
worker of a node) runs its queue, and the store's leases (``FOR UPDATE SKIP LOCKED``, see
``store/sqlite_queue.py``) keep them apart, so each message reaches the peer once."""

from __future__ import annotations

import re
import signal
import smtplib

import pytest

from tests.integration.test_workers_queue import outside, two_workers_queue
from tests.support.servers import WAIT, ServerProcess, write_config

pytest.importorskip("psycopg")

COUNT = 40
__all__ = ["outside"]  # the peer and DNS zone fixture, shared with the workers' queue tests


def test_two_nodes_deliver_each_message_once(postgres, tmp_path, outside):
    zone, peer = outside
    url = postgres.database()
    paths = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        storage = f'[storage]\ndata-dir = "{directory / "var"}"\nbackend = "postgresql"\n'
        text = storage + f'url = "{url}"\n' + two_workers_queue(zone.port, peer.port)
        paths.append(write_config(directory, text))
    with ServerProcess(paths[0]) as a, ServerProcess(paths[1]) as b:
        for n in range(COUNT):  # half accepted by each node
            host, port = (a, b)[n % 2].address("smtp")
            with smtplib.SMTP(host, port, timeout=WAIT) as client:
                data = f"Subject: {n}\r\nMessage-ID: <{n}@nodes.test>\r\n\r\nbody {n}\r\n"
                client.sendmail("alice@example.test", ["bob@remote.test"], data)
        peer.wait_for(COUNT)
        for node in (a, b):  # what is under way finishes (or is left leased) before counting
            node.signal(signal.SIGTERM)
            assert node.wait_exit() == 0
    ids = [re.search(rb"Message-ID: <(\d+)@nodes", m.data).group(1) for m in peer.received]
    assert sorted(ids, key=int) == [str(n).encode() for n in range(COUNT)]  # each once
