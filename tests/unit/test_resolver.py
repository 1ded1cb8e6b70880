"""The one DNS resolver against a loopback DNS server: answers as text, NXDOMAIN, NODATA,
failures, and a cache that honours TTLs (positive and negative) within its bounds."""

from __future__ import annotations

import time

import anyio
import pytest

from stalwart_py.metrics import Metrics
from stalwart_py.resolver import (
    DnsTemporaryError,
    InvalidName,
    NameNotFound,
    Resolver,
)
from tests.support.mail_peers import ZoneServer, txt_text

pytestmark = pytest.mark.anyio


@pytest.fixture
async def zone():
    server = ZoneServer()
    await server.start()
    yield server
    server.close()


def resolver_for(zone: ZoneServer, **options) -> Resolver:
    options.setdefault("timeout", 2.0)
    return Resolver(nameservers=[("127.0.0.1", zone.port)], **options)


async def test_answers_as_text(zone):
    zone.add("example.test", "A", "192.0.2.1")
    zone.add("example.test", "A", "192.0.2.2")
    zone.add("example.test", "AAAA", "2001:db8:0:0::1")
    zone.add("example.test", "MX", "10 mx.example.test.")
    zone.add("example.test", "MX", "0 .")
    long = "v=spf1 " + " ".join(f"ip4:192.0.2.{n}" for n in range(40)) + " -all"
    zone.add("example.test", "TXT", txt_text(long))  # several strings, joined with nothing
    zone.add("1.2.0.192.in-addr.arpa", "PTR", "host.example.test.")
    six = "1." + "0." * 23 + "8.b.d.0.1.0.0.2.ip6.arpa"
    zone.add(six, "PTR", "six.test.")
    resolver = resolver_for(zone)
    assert sorted(await resolver.a("example.test")) == ["192.0.2.1", "192.0.2.2"]
    assert await resolver.aaaa("Example.Test.") == ["2001:db8::1"]
    assert sorted(await resolver.lookup("example.test", "MX")) == ["0 .", "10 mx.example.test."]
    assert sorted(await resolver.mx("example.test")) == [(0, ""), (10, "mx.example.test")]
    assert await resolver.txt("example.test") == [long]
    assert await resolver.ptr("192.0.2.1") == ["host.example.test"]
    assert await resolver.ptr("2001:db8::1") == ["six.test"]


async def test_nxdomain_nodata_and_failures(zone):
    zone.add("example.test", "A", "192.0.2.1")
    zone.servfail.add("broken.test")
    zone.timeout.add("silent.test")
    resolver = resolver_for(zone, timeout=0.2, attempts=2)
    assert await resolver.txt("example.test") == []  # NODATA
    with pytest.raises(NameNotFound):
        await resolver.a("missing.test")
    with pytest.raises(DnsTemporaryError, match="SERVFAIL"):
        await resolver.a("broken.test")
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError, match="timed out"):
        await resolver.a("silent.test")
    assert 0.3 < time.monotonic() - started < 2.0  # two tries of 0.2 s, then given up
    with pytest.raises(InvalidName):
        await resolver.a("a" * 64 + ".test")
    with pytest.raises(InvalidName):
        await resolver.a("a..test")


async def test_cache_honours_ttl_and_negative_ttl(zone):
    zone.add("example.test", "A", "192.0.2.1")
    zone.negative_ttl = 300
    resolver = resolver_for(zone)
    for _ in range(3):
        assert await resolver.a("example.test") == ["192.0.2.1"]
        assert await resolver.txt("example.test") == []
        with pytest.raises(NameNotFound):
            await resolver.a("missing.test")
    assert zone.queries == [
        ("example.test", "A"),
        ("example.test", "TXT"),
        ("missing.test", "A"),
    ]
    assert (resolver.hits, resolver.misses) == (6, 3)


async def test_ttl_zero_and_negative_without_soa_are_not_cached(zone):
    zone.add("example.test", "A", "192.0.2.1")
    zone.ttl = 0
    resolver = resolver_for(zone)
    for _ in range(2):
        await resolver.a("example.test")
        with pytest.raises(NameNotFound):  # no SOA: RFC 2308 says do not cache it
            await resolver.a("missing.test")
    assert len(zone.queries) == 4


async def test_ttl_is_clamped_and_expires(zone):
    zone.add("example.test", "A", "192.0.2.1")
    zone.ttl = 86400
    resolver = resolver_for(zone, max_ttl=0.3)
    await resolver.a("example.test")
    await resolver.a("example.test")
    assert len(zone.queries) == 1
    await anyio.sleep(0.4)  # ok: waiting out a 0.3 s TTL is the point of the test
    await resolver.a("example.test")
    assert len(zone.queries) == 2


async def test_failures_are_not_cached(zone):
    zone.servfail.add("flaky.test")
    zone.add("flaky.test", "A", "192.0.2.9")
    resolver = resolver_for(zone)
    with pytest.raises(DnsTemporaryError):
        await resolver.a("flaky.test")
    zone.servfail.clear()
    assert await resolver.a("flaky.test") == ["192.0.2.9"]


async def test_cache_is_bounded_least_recently_used_first(zone):
    for n in range(5):
        zone.add(f"h{n}.test", "A", f"192.0.2.{n}")
    resolver = resolver_for(zone, cache_size=3)
    for n in range(5):
        await resolver.a(f"h{n}.test")
    assert len(resolver._cache) == 3
    zone.queries.clear()
    await resolver.a("h4.test")  # kept
    await resolver.a("h0.test")  # pushed out
    assert zone.queries == [("h0.test", "A")]


async def test_concurrent_lookups_share_one_query(zone):
    zone.add("example.test", "TXT", '"v=spf1 -all"')
    resolver = resolver_for(zone)
    results: list[list[str]] = []

    async def ask() -> None:
        results.append(await resolver.txt("example.test"))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(ask)
    assert results == [["v=spf1 -all"]] * 10
    assert zone.queries == [("example.test", "TXT")]


async def test_cname_is_followed(zone):
    zone.add("alias.test", "CNAME", "real.test.")
    zone.add("real.test", "A", "192.0.2.7")
    assert await resolver_for(zone).a("alias.test") == ["192.0.2.7"]


async def test_a_cancelled_asker_does_not_answer_for_the_others(zone):
    zone.timeout.add("silent.test")
    resolver = resolver_for(zone, timeout=0.3, attempts=1)
    outcome: list[str] = []

    async def impatient() -> None:
        with anyio.move_on_after(0.05):
            await resolver.a("silent.test")

    async def patient() -> None:
        await anyio.sleep(0.01)  # ok: to be the second asker, waiting on the first
        try:
            await resolver.a("silent.test")
        except DnsTemporaryError as exc:
            outcome.append(str(exc))

    async with anyio.create_task_group() as group:
        group.start_soon(impatient)
        group.start_soon(patient)
    assert outcome == ["A silent.test: timed out"]  # its own query, not a false NXDOMAIN


async def test_names_idna_cannot_encode_are_invalid(zone):
    with pytest.raises(InvalidName):
        await resolver_for(zone).a("xn--.\u00df\u0301-.test")


async def test_lookups_are_counted_by_outcome(zone):
    zone.add("example.test", "A", "192.0.2.1")
    zone.servfail.add("broken.test")
    metrics = Metrics()
    resolver = Resolver([("127.0.0.1", zone.port)], timeout=1.0, metrics=metrics)
    await resolver.a("example.test")
    await resolver.a("example.test")
    with pytest.raises(NameNotFound):
        await resolver.a("missing.test")
    with pytest.raises(DnsTemporaryError):
        await resolver.a("broken.test")

    def count(result: str) -> float | None:
        return metrics.registry.get_sample_value("stalwart_dns_lookups_total", {"result": result})

    assert [count(r) for r in ("answered", "cached", "not_found", "failed")] == [1, 1, 1, 1]
