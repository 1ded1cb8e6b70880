"""The login throttle across nodes (``stalwart_py/cluster_throttle.py``): two directories,
each on a ``PostgresStore`` of its own (two nodes) on one database. Failures counted on one
block the client on the other; a success on one forgets the pair's failures on both; another
address is never blocked by them. On SQLite nothing is written (the machine's table is all)."""

from __future__ import annotations

import ipaddress

import pytest

from stalwart_py import sasl
from stalwart_py.config import DirectorySettings, ThrottleSettings
from stalwart_py.directory import Directory
from stalwart_py.store.sqlite import SqliteStore
from stalwart_py.throttle import AuthThrottled

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.anyio
USER, PASSWORD = "bob@example.test", "the right one"
CLIENT = ipaddress.ip_address("192.0.2.10")
OTHER = ipaddress.ip_address("198.51.100.1")
SETTINGS = DirectorySettings(
    throttle=ThrottleSettings(
        max_failures_per_address_and_account=3, block_time=600, failure_delay=0
    )
)


@pytest.fixture
async def nodes(pg_node_stores):
    a, b = (Directory(store, SETTINGS) for store in pg_node_stores)
    await a.add_domain("example.test")
    await a.add_account(USER, PASSWORD)
    return a, b


async def fail(directory: Directory, times: int, client=CLIENT) -> None:
    for _ in range(times):
        with pytest.raises(sasl.AuthFailed) as refused:
            await directory.login(USER, "a wrong guess", client)
        assert not isinstance(refused.value, AuthThrottled)


async def test_failures_on_one_node_block_the_client_on_the_other(nodes):
    a, b = nodes
    await fail(a, 3)
    with pytest.raises(AuthThrottled) as blocked:
        await b.login(USER, PASSWORD, CLIENT)  # the right password, refused unchecked
    assert 590 < blocked.value.retry_after <= 600
    assert len(b.throttle) == 0  # not from B's own table: from the database
    assert (await b.login(USER, PASSWORD, OTHER)).address == USER  # another address is not


async def test_a_success_on_one_node_forgets_the_pairs_failures_on_both(nodes):
    a, b = nodes
    await fail(a, 2)
    assert (await b.login(USER, PASSWORD, CLIENT)).address == USER
    await fail(b, 1)
    await fail(a, 1)  # two since the success: under the limit of three
    assert (await a.login(USER, PASSWORD, CLIENT)).address == USER


async def test_on_sqlite_the_store_counts_nothing(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        directory = Directory(store, SETTINGS)
        await directory.add_domain("example.test")
        await directory.add_account(USER, PASSWORD)
        await fail(directory, 3)
        with pytest.raises(AuthThrottled):  # the machine's table alone
            await directory.login(USER, PASSWORD, CLIENT)
        assert not store.shares_login_failures
        assert await store.login_failures([b"anything"], 0.0) == {}
    finally:
        await store.close()
