"""The login throttle on a fake clock: per (address, account) and per address, doubling blocks up
to a cap, refusals that do not extend a block, a sliding window, bounded memory."""

from __future__ import annotations

import ipaddress

import pytest

from stalwart_py.config import ThrottleSettings
from stalwart_py.throttle import AuthThrottled, LoginThrottle

A = ipaddress.ip_address("10.0.0.1")
B = ipaddress.ip_address("10.0.0.2")
ALICE, BOB = "alice@example.test", "bob@example.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(**settings) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    defaults = {
        "max_failures_per_address_and_account": 3,
        "max_failures_per_address": 10,
        "block_time": 1.0,
        "max_block_time": 60.0,
        "window": 3600.0,
    }
    return LoginThrottle(ThrottleSettings(**{**defaults, **settings}), clock), clock


def fail(t: LoginThrottle, ip, account, times: int = 1) -> None:
    for _ in range(times):
        t.check(ip, account)  # a failure is only ever counted after an attempt was allowed
        t.failed(ip, account)


def test_a_pair_is_blocked_for_a_doubling_time_that_ends():
    t, clock = throttle()
    fail(t, A, ALICE, 2)
    assert t.wait(A, ALICE) == 0  # under the limit: try again at once
    blocks = []
    for _ in range(9):
        fail(t, A, ALICE)
        blocks.append(t.wait(A, ALICE))
        clock.now += blocks[-1]  # wait it out: the next attempt is checked
    assert blocks == [1, 2, 4, 8, 16, 32, 60, 60, 60]  # doubling, up to max-block-time


def test_a_blocked_pair_blocks_nobody_else():
    t, _ = throttle()
    fail(t, A, ALICE, 3)
    with pytest.raises(AuthThrottled) as refused:
        t.check(A, ALICE)
    assert refused.value.retry_after == 1.0
    t.check(B, ALICE)  # alice from another address: the account is not locked
    t.check(A, BOB)  # another account from the same address
    t.check(A)  # the address as such (SASL before the user name is known)


def test_attempts_while_blocked_do_not_extend_the_block():
    t, clock = throttle()
    for _ in range(5):  # attempts on parallel connections, all let through before any failed
        t.failed(A, ALICE)
    assert t.wait(A, ALICE) == 4  # 5 failures, limit 3: 1 s doubled twice
    for _ in range(40):  # a client that keeps trying, refused each time
        clock.now += 0.0625
        with pytest.raises(AuthThrottled):
            t.check(A, ALICE)
    assert t.wait(A, ALICE) == 1.5  # the same end as before: 4 - 40 * 0.0625
    clock.now += 1.5
    t.check(A, ALICE)  # its next try is checked


def test_the_address_is_blocked_for_every_account_past_its_own_limit():
    t, clock = throttle()
    for number in range(10):  # one failure each for ten accounts: no pair is near its limit
        fail(t, A, f"user{number}@example.test")
    with pytest.raises(AuthThrottled):
        t.check(A)
    with pytest.raises(AuthThrottled):
        t.check(A, ALICE)  # even an account it never tried
    t.check(B, ALICE)  # another address is not concerned
    clock.now += 1
    t.check(A, ALICE)


def test_ipv6_counts_by_64_and_mapped_ipv4_as_ipv4():
    t, _ = throttle()
    for host in range(3):  # three addresses of one /64: one client
        fail(t, ipaddress.ip_address(f"2001:db8:1:2::{host + 1}"), ALICE)
    with pytest.raises(AuthThrottled):
        t.check(ipaddress.ip_address("2001:db8:1:2:ffff::9"), ALICE)
    t.check(ipaddress.ip_address("2001:db8:1:3::1"), ALICE)  # the next /64
    fail(t, ipaddress.ip_address("::ffff:10.0.0.1"), BOB, 3)
    with pytest.raises(AuthThrottled):
        t.check(A, BOB)


def test_failures_leave_the_window():
    t, clock = throttle(window=600.0)
    fail(t, A, ALICE, 2)
    clock.now += 300
    fail(t, A, ALICE)
    assert t.wait(A, ALICE) == 1  # three in the window
    clock.now += 301  # the first two are out
    fail(t, A, ALICE)
    assert t.wait(A, ALICE) == 0  # two in the window
    assert len(t) == 2  # the address and the pair
    clock.now += 600
    assert len(t) == 0  # both out of the window: their records may be taken by other keys
    fail(t, B, BOB)
    assert len(t) == 2


def test_a_success_forgets_the_pair_not_the_address():
    t, _ = throttle(max_failures_per_address=5)
    fail(t, A, ALICE, 2)
    t.succeeded(A, ALICE)
    fail(t, A, ALICE, 2)
    assert t.wait(A, ALICE) == 0  # the pair starts over after the success (2 failures, not 4)
    fail(t, A, ALICE)
    with pytest.raises(AuthThrottled):
        t.check(A, BOB)  # but the address has all 5 failures: bob is not tried from it


def test_a_local_client_is_throttled_per_account_only():
    t, _ = throttle()
    fail(t, None, ALICE, 3)
    with pytest.raises(AuthThrottled):
        t.check(None, ALICE)
    for number in range(20):  # everyone behind a local reverse proxy is one "address"
        fail(t, None, f"user{number}@example.test")
    t.check(None, BOB)
    t.succeeded(None, ALICE)
    t.check(None, ALICE)


def test_memory_is_bounded_whatever_the_attacker_rotates():
    t, clock = throttle(max_tracked=1000)
    for number in range(20_000):  # a new address and a new, long account name each time
        clock.now += 0.001
        ip = ipaddress.ip_address(0x0A000000 + number)
        t.failed(ip, f"{number}-{'x' * 5000}@example.test")
    assert len(t) <= 1000
    for _ in range(500):  # one pair failing forever keeps only what can lengthen its block
        clock.now += 100
        t.failed(A, ALICE)
    sizes = [len(t._times(at)) for at in t.table.records()]
    assert max(sizes) == 10 + 6  # the address's limit, plus log2(60 / 1) doublings (the cap)
    assert t.table.capacity == 1000 and len(t.table.map) < 1000 * 600  # fixed, not user names


def test_block_time_zero_turns_blocking_off():
    t, _ = throttle(block_time=0.0)
    fail(t, A, ALICE, 50)
    t.check(A, ALICE)
