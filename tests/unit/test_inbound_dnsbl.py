"""DNS block- and allowlist lookups (RFC 5782) through the one resolver, against a loopback
DNS server: reversed IPv4 octets and IPv6 nibbles, domains, only 127.0.0.0/8 answers counted,
the list's "query refused" codes and DNS failures never counted, the TXT reason."""

from __future__ import annotations

import ipaddress

import pytest

from stalwart_py.inbound.dnsbl import Listing, lookup_domain, lookup_ip, reversed_name
from stalwart_py.resolver import Resolver
from tests.support.mail_peers import ZoneServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def resolver():
    zone = ZoneServer()
    await zone.start()
    zone.add("2.0.0.127.bl.test", "A", "127.0.0.2")  # RFC 5782 5: the test entry
    zone.add("2.0.0.127.bl.test", "TXT", '"Listed, see https://bl.test/127.0.0.2"')
    zone.add("2.0.0.127.other.test", "A", "127.0.0.10")
    zone.add("2.0.0.127.other.test", "A", "127.0.0.4")
    zone.add("9.2.0.192.bl.test", "A", "127.255.255.254")  # "you queried via a public resolver"
    zone.add("8.2.0.192.bl.test", "A", "198.51.100.1")  # a resolver rewriting NXDOMAIN
    nibbles = ".".join(reversed("20010db8000000000000000000000001"))
    zone.add(f"{nibbles}.bl.test", "A", "127.0.0.3")
    zone.add("spam.example.dbl.test", "A", "127.0.1.2")
    zone.servfail.add("7.2.0.192.bl.test")
    yield Resolver(nameservers=[("127.0.0.1", zone.port)], timeout=2.0)
    zone.close()


def ip(text: str):
    return ipaddress.ip_address(text)


def test_query_names():
    assert reversed_name(ip("192.0.2.99")) == "99.2.0.192"
    assert reversed_name(ip("::ffff:192.0.2.99")) == "99.2.0.192"
    assert reversed_name(ip("2001:db8::1")) == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    )


async def test_listed_addresses_with_codes_and_reasons(resolver):
    listings = await lookup_ip(resolver, ip("127.0.0.2"), ["bl.test", "none.test", "other.test"])
    assert listings == [
        Listing("bl.test", "127.0.0.2", ("127.0.0.2",), "Listed, see https://bl.test/127.0.0.2"),
        Listing("other.test", "127.0.0.2", ("127.0.0.10", "127.0.0.4"), None),
    ]
    assert listings[0].describe() == (
        "127.0.0.2 listed by bl.test (127.0.0.2): Listed, see https://bl.test/127.0.0.2"
    )
    [six] = await lookup_ip(resolver, ip("2001:db8::1"), ["bl.test"])
    assert six.codes == ("127.0.0.3",)


async def test_unlisted_refused_odd_and_failed_answers_never_count(resolver, caplog):
    assert await lookup_ip(resolver, ip("192.0.2.1"), ["bl.test"]) == []  # NXDOMAIN
    assert await lookup_ip(resolver, ip("192.0.2.9"), ["bl.test"]) == []
    assert "refused the query" in caplog.text
    assert await lookup_ip(resolver, ip("192.0.2.8"), ["bl.test"]) == []
    assert "outside 127.0.0.0/8" in caplog.text
    assert await lookup_ip(resolver, ip("192.0.2.7"), ["bl.test"]) == []  # SERVFAIL


async def test_domains(resolver):
    [listing] = await lookup_domain(resolver, "Spam.Example.", ["dbl.test"])
    assert (listing.zone, listing.subject) == ("dbl.test", "spam.example")
    assert await lookup_domain(resolver, "ham.example", ["dbl.test"]) == []
    assert await lookup_domain(resolver, "[192.0.2.1]", ["dbl.test"]) == []
    assert await lookup_domain(resolver, "localhost", ["dbl.test"]) == []
