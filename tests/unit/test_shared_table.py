"""The tables of per-key counts the worker processes share: ConnectionCounts against a model
(hypothesis), a dead worker's cells cleared, buckets that fill up, two real processes counting
at once without losing an update, and the throttle and rate limiter seen from two "workers"."""

from __future__ import annotations

import ipaddress
import math
import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart_py.config import ThrottleSettings
from stalwart_py.inbound.rate import RateLimiter, rate_key, rate_table
from stalwart_py.shared_table import BUCKET, ConnectionCounts, SharedTable
from stalwart_py.throttle import AuthThrottled, LoginThrottle, failure_table

NAMES = [f"ip\0smtp\0192.0.2.{n}".encode() for n in range(12)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["enter", "leave", "clear"]), st.integers(0, 2), st.integers(0, 11)
        ),
        max_size=120,
    ),
    st.sampled_from([8, 16, 65536]),
)
def test_counts_match_a_model_of_three_workers(steps, capacity):
    counts = ConnectionCounts(3, capacity)
    keys = [counts.key(name) for name in NAMES]
    model: dict[int, Counter[bytes]] = {worker: Counter() for worker in range(3)}
    for action, worker, n in steps:
        key = keys[n]
        counts.worker = worker
        if action == "enter":
            total = counts.enter(key)
            if total is None:  # no room in the bucket: every record counts someone
                assert sum(1 for _ in counts.table.records()) >= BUCKET
                continue
            model[worker][key] += 1
            assert total == sum(m[key] for m in model.values())
        elif action == "leave" and model[worker][key]:
            counts.leave(key)
            model[worker][key] -= 1
        elif action == "clear":
            counts.clear_worker(worker)
            model[worker].clear()
        for k in keys:
            assert counts.total(k) == sum(m[k] for m in model.values())
    assert counts.table.capacity >= capacity


def test_a_bucket_full_of_live_counts_refuses_to_count_and_a_freed_record_is_reused():
    counts = ConnectionCounts(1, BUCKET)  # one bucket
    keys = [counts.key(name) for name in NAMES]
    assert [counts.enter(k) for k in keys[:BUCKET]] == [1] * BUCKET
    assert counts.enter(keys[BUCKET]) is None
    counts.leave(keys[0])
    assert counts.enter(keys[BUCKET]) == 1
    counts.clear_worker(0)  # the records stay until taken, but count nobody
    assert all(counts.total(k) == 0 for k in keys)
    assert counts.enter(keys[BUCKET + 1]) == 1


def test_two_processes_counting_at_once_lose_no_update():
    counts = ConnectionCounts(2)
    keys = [counts.key(name) for name in NAMES]
    key = keys[0]
    counts.enter(key)  # held across the run: the record must never be released under them
    children = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                counts.worker = worker
                for _ in range(3000):
                    if counts.enter(key) is None:
                        code = 2
                    counts.leave(key)
                    counts.enter(keys[1 + worker])
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert counts.total(key) == 1  # the parent's own, whatever the interleaving
    assert counts.total(keys[1]) == 3000 and counts.total(keys[2]) == 3000
    counts.clear_worker(1)
    assert counts.total(keys[2]) == 0 and counts.total(keys[1]) == 3000


def test_a_table_forgets_nothing_between_processes_and_evicts_least_recently_used():
    table = SharedTable(8, BUCKET)
    digests = [table.digest(bytes([n])) for n in range(BUCKET + 1)]
    with table.locked():
        for moment, digest in enumerate(digests[:BUCKET]):
            assert table.claim(digest, float(moment), free=lambda at: False, evict=True)[1]
        table.set_stamp(table.find(digests[0]), 100.0)  # used again: the oldest is now [1]
        at, new = table.claim(digests[BUCKET], 200.0, free=lambda at: False, evict=True)
        assert new and table.find(digests[1]) is None and table.find(digests[0]) is not None
        assert table.claim(digests[BUCKET], 300.0, free=lambda at: False, evict=True) == (at, False)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_counts_failures_made_through_either_worker():
    clock = Clock()
    options = ThrottleSettings(max_failures_per_address_and_account=4, window=600.0)
    table = failure_table(options.max_tracked)
    workers = [LoginThrottle(options, clock, table=table) for _ in range(2)]
    ip = ipaddress.ip_address("192.0.2.7")
    for n in range(4):
        workers[n % 2].check(ip, "alice@example.test")
        workers[n % 2].failed(ip, "alice@example.test")
    for throttle in workers:
        assert throttle.wait(ip, "alice@example.test") == 1.0
    with pytest.raises(AuthThrottled) as refused:
        workers[0].check(ip, "alice@example.test")
    assert refused.value.retry_after == 1.0
    workers[1].succeeded(ip, "alice@example.test")
    assert workers[0].wait(ip, "alice@example.test") == 0.0


def test_a_rate_bucket_is_drained_through_either_worker():
    clock = Clock()
    table = rate_table(1000)
    workers = [RateLimiter(clock=clock, table=table) for _ in range(2)]
    key = rate_key("mx", ipaddress.ip_address("192.0.2.8"))
    assert [workers[n % 2].take(key, 4) for n in range(4)] == [0.0] * 4
    assert workers[0].take(key, 4) == 15.0 and workers[1].take(key, 4) == 15.0


class ThrottleModel:
    """The login throttle's rules over plain lists (stalwart_py.throttle's docstring), to hold
    the shared-table implementation to them."""

    def __init__(self, options: ThrottleSettings) -> None:
        self.options = options
        self.failures: dict[tuple, list[float]] = {}

    def keys(self, ip, account):
        keys = [(("a", ip), self.options.max_failures_per_address)]
        if account is not None:
            keys.append((("p", ip, account), self.options.max_failures_per_address_and_account))
        return keys

    def recent(self, key, now):
        return [t for t in self.failures.get(key, []) if t > now - self.options.window]

    def wait(self, ip, account, now):
        longest = 0.0
        for key, limit in self.keys(ip, account):
            if times := self.recent(key, now):
                block = 0.0
                if len(times) >= limit:
                    block = min(
                        self.options.block_time * 2.0 ** (len(times) - limit),
                        self.options.max_block_time,
                    )
                longest = max(longest, times[-1] + block - now)
        return longest

    def failed(self, ip, account, now):
        ratio = self.options.max_block_time / self.options.block_time
        for key, limit in self.keys(ip, account):
            kept = min(limit + math.ceil(math.log2(ratio)), 64)
            self.failures[key] = [*self.recent(key, now), now][-kept:]

    def succeeded(self, ip, account):
        self.failures.pop(("p", ip, account), None)


ADDRESSES = [ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.2", "2001:db8::1")]
ACCOUNTS = [None, "alice@example.test", "bob@example.test"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["failed", "failed", "failed", "succeeded", "wait"]),
            st.integers(0, 2),
            st.integers(0, 2),
            st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 7.0, 60.0, 700.0]),
        ),
        max_size=120,
    ),
    st.integers(1, 4),
    st.integers(1, 6),
    st.sampled_from([1.0, 4.0, 60.0]),
)
def test_the_shared_throttle_keeps_the_throttles_rules(steps, pair_limit, address_limit, longest):
    options = ThrottleSettings(
        max_failures_per_address_and_account=pair_limit,
        max_failures_per_address=address_limit,
        block_time=1.0,
        max_block_time=longest,
        window=600.0,
        max_tracked=1000,
    )
    clock = Clock()
    clock.now = 1000.0
    throttle = LoginThrottle(options, clock)
    model = ThrottleModel(options)
    for action, address, account, elapsed in steps:
        clock.now += elapsed
        ip, name = ADDRESSES[address], ACCOUNTS[account]
        if action == "failed":
            throttle.failed(ip, name)
            model.failed(ip, name, clock.now)
        elif action == "succeeded" and name is not None:
            throttle.succeeded(ip, name)
            model.succeeded(ip, name)
        for ip in ADDRESSES:
            for name in ACCOUNTS:
                assert throttle.wait(ip, name) == model.wait(ip, name, clock.now)
