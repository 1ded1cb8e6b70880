"""The hash pool (stalwart_py.hash_pool): bounded, in order, deferring; and the configuration
of the pool and of the authentication cache."""

from __future__ import annotations

import threading

import anyio
import pytest

from stalwart_py import cli, server
from stalwart_py.hash_pool import HashPool, LoginDeferred
from stalwart_py.throttle import AuthThrottled
from tests.support.protocols import PROTOCOLS

pytestmark = pytest.mark.anyio

LISTENER = """
[storage]
data-dir = "/tmp/unused"

[server.listener.probe]
bind = ["127.0.0.1:2525"]
protocol = "probe"
"""


async def _occupied(pool: HashPool, gate: threading.Event, group: anyio.abc.TaskGroup) -> None:
    """Start a hash that holds a worker until ``gate`` is set; return once it runs."""
    group.start_soon(pool.run, gate.wait)
    await anyio.wait_all_tasks_blocked()
    assert pool.running == 1


async def test_waiters_get_their_turn_in_arrival_order():
    pool = HashPool(size=1, max_wait=10.0)
    order: list[int] = []
    gate = threading.Event()
    async with anyio.create_task_group() as group:
        await _occupied(pool, gate, group)
        for number in range(5):
            group.start_soon(pool.run, order.append, number)
            await anyio.wait_all_tasks_blocked()  # queued before the next one arrives
        assert pool.waiting == 5
        gate.set()
    assert order == [0, 1, 2, 3, 4]


async def test_no_more_than_size_run_at_once():
    pool = HashPool(size=3, max_wait=10.0)
    lock = threading.Lock()
    now = peak = 0
    release = threading.Event()

    def work() -> None:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        release.wait(5)
        with lock:
            now -= 1

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(pool.run, work)
        await anyio.wait_all_tasks_blocked()
        assert pool.running == 3 and pool.waiting == 7
        release.set()
    assert peak == 3


async def test_a_wait_that_runs_out_defers_and_frees_its_place():
    pool = HashPool(size=1, max_wait=0.05)
    gate = threading.Event()
    async with anyio.create_task_group() as group:
        await _occupied(pool, gate, group)
        with pytest.raises(LoginDeferred) as caught:
            await pool.run(lambda: None)
        assert isinstance(caught.value, AuthThrottled)  # every protocol's "try later"
        assert caught.value.retry_after > 0
        assert pool.waiting == 0
        gate.set()
    assert await pool.run(lambda: 42) == 42  # the worker is free again


async def test_work_that_may_not_be_deferred_waits_its_turn_however_long():
    pool = HashPool(size=1, max_wait=0.0)
    gate = threading.Event()
    results: list[int] = []

    async def patient() -> None:
        results.append(await pool.run(lambda: 7, may_defer=False))

    async with anyio.create_task_group() as group:
        await _occupied(pool, gate, group)
        group.start_soon(patient)
        await anyio.wait_all_tasks_blocked()
        assert pool.waiting == 1  # still queued, past max_wait
        with pytest.raises(LoginDeferred):
            await pool.run(lambda: None)
        gate.set()
    assert results == [7]


async def test_a_free_worker_runs_even_with_no_wait_allowed():
    pool = HashPool(size=1, max_wait=0.0)
    assert await pool.run(sum, [1, 2]) == 3


async def test_the_work_runs_off_the_event_loop():
    pool = HashPool(size=2)
    assert await pool.run(threading.get_ident) != threading.get_ident()


async def test_a_larger_size_on_reload_lets_waiters_in():
    pool = HashPool(size=1, max_wait=10.0)
    gate = threading.Event()
    async with anyio.create_task_group() as group:
        await _occupied(pool, gate, group)
        done = anyio.Event()

        async def waiter() -> None:
            await pool.run(lambda: None)
            done.set()

        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert pool.waiting == 1
        pool.configure(2, 10.0)
        with anyio.fail_after(5):
            await done.wait()
        gate.set()


def test_the_default_size_is_the_number_of_cpus():
    import os

    assert HashPool().size == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "\n[directory]\nmax-concurrent-hashes = 0\n",
            "FILE: directory.max-concurrent-hashes: expected an integer from 1 to 1024, found 0",
        ),
        (
            '\n[directory]\nmax-hash-wait = "soon"\n',
            'FILE: directory.max-hash-wait: expected a duration such as "30s", "5m" or "1h", '
            'or a number of seconds, found "soon"',
        ),
        (
            "\n[directory]\nmax-hashes = 4\n",
            "FILE: directory.max-hashes: unknown key",
        ),
        (
            "\n[directory.auth-cache]\nmax-entries = 0\n",
            "FILE: directory.auth-cache.max-entries: expected an integer of at least 1, found 0",
        ),
        (
            '\n[directory.auth-cache]\nttl = "-5m"\n',
            'FILE: directory.auth-cache.ttl: expected a duration such as "30s"',
        ),
    ],
)
def test_bad_values_name_file_key_and_expectation(tmp_path, capsys, monkeypatch, text, message):
    monkeypatch.setattr(server, "discover_protocols", lambda: dict(PROTOCOLS))
    path = tmp_path / "config.toml"
    path.write_text(LISTENER + text)
    assert cli.main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err.replace(str(path), "FILE")
    assert any(line.startswith(message) for line in err.splitlines()), err
