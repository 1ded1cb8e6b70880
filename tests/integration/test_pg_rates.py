"""SMTP rate limits across nodes (``inbound/rate.py``'s ``NodesRate``, ``store/pg_rates.py``):
two nodes, each a ``PostgresStore`` of its own on one database, take from one bucket per
client, so a sender a load balancer spreads over them gets the limit once. The bucket refills
at the limit's pace, whichever node's clock reads it; on SQLite the machine's table is all."""

from __future__ import annotations

import ipaddress

import pytest

from stalwart_py.inbound.rate import NodesRate, RateLimiter, rate_key
from stalwart_py.store.sqlite import SqliteStore

pytest.importorskip("psycopg")

pytestmark = pytest.mark.anyio
KEY = rate_key("smtp", ipaddress.ip_address("192.0.2.10"))


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stores(pg_node_stores):
    return pg_node_stores


async def test_two_nodes_take_from_one_bucket_which_refills_at_the_limits_pace(stores):
    clock = Clock()
    a, b = (NodesRate("connections", RateLimiter(), store, clock) for store in stores)
    assert await a.take(KEY, 3) == 0.0
    assert await b.take(KEY, 3) == 0.0
    assert await a.take(KEY, 3) == 0.0
    wait = await b.take(KEY, 3)  # the fourth in the minute, on either node
    assert wait == pytest.approx(20.0)  # a token every 60/3 s
    assert len(a.local) == len(b.local) == 0  # counted in the database, not the machine
    clock.now += 10
    assert await a.take(KEY, 3) == pytest.approx(10.0)  # refused: nothing taken
    clock.now += 10
    assert await a.take(KEY, 3) == 0.0
    assert await b.take(KEY, 3) == pytest.approx(20.0)
    other = rate_key("smtp", ipaddress.ip_address("198.51.100.1"))
    assert await b.take(other, 3) == 0.0  # another client has a bucket of its own
    messages = NodesRate("messages", RateLimiter(), stores[1], clock)
    assert await messages.take(KEY, 3) == 0.0  # and another kind of event


async def test_a_clock_behind_refills_nothing_and_takes_nothing_back(stores):
    clock, late = Clock(), Clock(1_000_000.0 - 30)
    a = NodesRate("messages", RateLimiter(), stores[0], clock)
    b = NodesRate("messages", RateLimiter(), stores[1], late)
    assert await a.take(KEY, 1) == 0.0
    assert await b.take(KEY, 1) == pytest.approx(60.0)  # 30 s behind: still empty
    clock.now += 60
    assert await a.take(KEY, 1) == 0.0


async def test_a_unix_socket_peer_is_never_limited(stores):
    rate = NodesRate("connections", RateLimiter(), stores[0], Clock())
    for _ in range(5):
        assert await rate.take(None, 1) == 0.0


async def test_on_sqlite_the_machines_table_counts(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        rate = NodesRate("connections", RateLimiter(), store, Clock())
        assert await rate.take(KEY, 1) == 0.0
        assert await rate.take(KEY, 1) > 0
        assert len(rate.local) == 1
    finally:
        await store.close()
