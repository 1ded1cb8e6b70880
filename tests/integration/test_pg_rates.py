"""SMTP rate limits across nodes (``inbound/rate.py``'s ``NodesRate``, ``store/pg_rates.py``):
two nodes, each a ``PostgresStore`` of its own on one database, take from one bucket per
client, so a sender a load balancer spreads over them gets the limit once. The bucket refills
at the limit's pace, whichever node's clock reads it; on SQLite the machine's table is all.
Without PostgreSQL a stranger gets a temporary error (421 at connect, 451 at MAIL FROM), the
server one warning line, and it serves again once the database is back."""

from __future__ import annotations

import ipaddress
import logging
import smtplib

import pytest

from stalwart_py.inbound.rate import NodesRate, RateLimiter, rate_key
from stalwart_py.store.sqlite import SqliteStore
from tests.support.inbound import PASSWORD, USER, inbound_config
from tests.support.proxied import ProxiedSMTP
from tests.support.servers import LOG_OF_ONE_WORKER
from tests.support.smtp import CHECKS_OFF

pytest.importorskip("psycopg")

KEY = rate_key("smtp", ipaddress.ip_address("192.0.2.10"))


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stores(pg_node_stores):
    return pg_node_stores


@pytest.mark.anyio
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


@pytest.mark.anyio
async def test_a_clock_behind_refills_nothing_and_takes_nothing_back(stores):
    clock, late = Clock(), Clock(1_000_000.0 - 30)
    a = NodesRate("messages", RateLimiter(), stores[0], clock)
    b = NodesRate("messages", RateLimiter(), stores[1], late)
    assert await a.take(KEY, 1) == 0.0
    assert await b.take(KEY, 1) == pytest.approx(60.0)  # 30 s behind: still empty
    clock.now += 60
    assert await a.take(KEY, 1) == 0.0


@pytest.mark.anyio
async def test_a_unix_socket_peer_is_never_limited(stores):
    rate = NodesRate("connections", RateLimiter(), stores[0], Clock())
    for _ in range(5):
        assert await rate.take(None, 1) == 0.0


@pytest.mark.anyio
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


STRANGER = "198.51.100.23"
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


@pytest.mark.own_store_backend("a database of its own, which the test takes away")
@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_without_postgresql_a_stranger_gets_a_temporary_error_and_the_server_goes_on(
    postgres, tmp_path, start_server, server_cert, caplog
):
    caplog.set_level(logging.INFO, logger="stalwart_py")
    url = postgres.database()
    storage = f'[storage]\ndata-dir = "{tmp_path}"\nbackend = "postgresql"\nurl = "{url}"\n'
    rates = "rate.connections-per-ip = 10\nrate.messages-per-ip = 10"
    server = start_server(storage + inbound_config(server_cert, smtp=rates, extra=CHECKS_OFF))
    server.add_account(USER, PASSWORD)
    mx = server.address("mx")
    with ProxiedSMTP(STRANGER, *mx) as before:  # its connection counted while PostgreSQL was up
        before.ehlo()
        with postgres.refusing(url):
            code, text = before.mail("a@remote.test")
            assert (code, text) == (451, b"4.3.0 Temporary local failure, try again later")
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                ProxiedSMTP(STRANGER, *mx)
            assert refused.value.smtp_code == 421
            assert refused.value.smtp_error == (
                b"4.3.0 mail.example.test Service not available, try again later"
            )
        before.rset()
        assert before.mail("a@remote.test")[0] == 250  # the database back: counted again
    with ProxiedSMTP(STRANGER, *mx) as after:  # and a new connection greeted
        assert after.ehlo()[0] == 250
        assert after.mail("a@remote.test")[0] == 250
    about = [record for record in caplog.records if STRANGER in record.getMessage()]
    warned = [record.getMessage() for record in about if record.levelno == logging.WARNING]
    assert len(warned) == 2 and not any("\n" in line for line in warned), warned
    refusal = f"rate of {STRANGER}:40000 not checked, refused with"
    assert warned[0].startswith(f"message {refusal} 451 4.3.0: OperationalError: "), warned
    assert warned[1].startswith(f"connection {refusal} 421 4.3.0: OperationalError: "), warned
    assert "is not currently accepting connections" in warned[1]
    assert not [record for record in about if record.exc_info], "a traceback was logged"
