"""The per-client rate limiter of MX listeners, on a fake clock: bursts up to the limit, the
pace after it, the retry time it answers, keys per address or IPv6 prefix, bounded memory."""

from __future__ import annotations

import ipaddress

from stalwart_py.inbound.rate import RateLimiter, rate_key, retry_text


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def ip(text: str):
    return ipaddress.ip_address(text)


def test_a_burst_up_to_the_limit_then_the_limits_pace():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    key = rate_key("mx", ip("192.0.2.1"))
    assert [limiter.take(key, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take(key, 3) == 20.0  # one token every 20 s at 3 per minute
    clock.now += 15
    assert limiter.take(key, 3) == 5.0  # refused attempts take nothing
    clock.now += 5
    assert limiter.take(key, 3) == 0.0
    assert limiter.take(key, 3) > 0
    assert limiter.take(rate_key("mx", ip("192.0.2.2")), 3) == 0.0  # another client


def test_keys_by_address_ipv6_prefix_and_listener():
    assert rate_key("mx", ip("2001:db8::1")) == rate_key("mx", ip("2001:db8::ffff"))
    assert rate_key("mx", ip("2001:db8::1")) != rate_key("mx", ip("2001:db8:0:1::1"))
    assert rate_key("mx", ip("2001:db8::1"), 128) != rate_key("mx", ip("2001:db8::2"), 128)
    assert rate_key("mx", ip("::ffff:192.0.2.1")) == rate_key("mx", ip("192.0.2.1"))
    assert rate_key("mx", ip("192.0.2.1")) != rate_key("mx2", ip("192.0.2.1"))
    assert rate_key("mx", None) is None
    assert RateLimiter().take(None, 1) == 0.0 and RateLimiter().take(None, 1) == 0.0


def test_memory_is_bounded_and_refilled_entries_expire():
    clock = Clock()
    limiter = RateLimiter(max_tracked=1000, clock=clock)
    for n in range(5000):
        limiter.take(rate_key("mx", ip(f"10.0.{n // 256}.{n % 256}")), 10)
    assert len(limiter) <= 1001
    clock.now += 61
    limiter.take(rate_key("mx", ip("192.0.2.9")), 10)
    assert len(limiter) == 1


def test_retry_text():
    assert retry_text(0.2) == "try again in 1 second"
    assert retry_text(20.0) == "try again in 20 seconds"
    assert retry_text(19.01) == "try again in 20 seconds"
