"""SPF beyond the OpenSPF suite: both identities of a transaction, the limits, the cache, and
the Received-SPF header (RFC 7208 section 9.1)."""

from __future__ import annotations

import email
import email.policy
import ipaddress

import pytest

from stalwart_py.inbound.spf import SpfResult, check_host, received_spf, verify_spf
from stalwart_py.inbound.spf_macros import (
    MacroContext,
    MacroError,
    expand,
    parse_domain_spec,
    parse_macro_string,
)
from stalwart_py.resolver import Resolver
from tests.support.mail_peers import ZoneServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def zone():
    server = ZoneServer()
    server.add("sender.test", "TXT", '"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"')
    server.add("mx.sender.test", "TXT", '"v=spf1 a -all"')
    server.add("mx.sender.test", "A", "192.0.2.25")
    server.add("soft.test", "TXT", '"v=spf1 ~all"')
    await server.start()
    yield server
    server.close()


def resolver_for(zone: ZoneServer) -> Resolver:
    return Resolver([("127.0.0.1", zone.port)], timeout=0.5, attempts=1)


async def test_both_identities(zone):
    resolver = resolver_for(zone)
    mail, helo = await verify_spf(
        resolver, "192.0.2.25", "alice@sender.test", "mx.sender.test", "mx.receiver.test"
    )
    assert (mail.result, mail.identity, mail.domain) == ("pass", "mailfrom", "sender.test")
    assert mail.mechanism == "ip4:192.0.2.0/24"
    assert (helo.result, helo.identity, helo.domain) == ("pass", "helo", "mx.sender.test")
    assert helo.sender == "postmaster@mx.sender.test"
    # From elsewhere: fail with the default explanation, naming the client and the domain.
    mail, helo = await verify_spf(
        resolver, "198.51.100.7", "alice@sender.test", "mx.sender.test", "mx.receiver.test"
    )
    assert (mail.result, helo.result) == ("fail", "fail")
    assert (
        mail.explanation == "198.51.100.7 is not one of sender.test's designated mail servers (SPF)"
    )
    # IPv6, and an IPv4 client seen through an IPv6 socket.
    mail, _ = await verify_spf(resolver, "2001:db8::5", "a@sender.test", "x", "r.test")
    assert mail.result == "pass"
    mail, _ = await verify_spf(resolver, "::ffff:192.0.2.9", "a@sender.test", "x", "r.test")
    assert (mail.result, mail.client_ip) == ("pass", "192.0.2.9")


async def test_null_sender_is_postmaster_at_helo(zone):
    mail, helo = await verify_spf(
        resolver_for(zone), "192.0.2.25", "", "mx.sender.test", "mx.receiver.test"
    )
    assert (mail.identity, mail.result, mail.sender) == (
        "mailfrom",
        "pass",
        "postmaster@mx.sender.test",
    )
    assert helo.identity == "helo"


async def test_none_neutral_and_errors(zone):
    resolver = resolver_for(zone)
    zone.add("plain.test", "A", "192.0.2.1")  # exists, publishes nothing
    zone.servfail.add("broken.test")
    zone.add("loop.test", "TXT", '"v=spf1 include:loop.test -all"')

    async def result(domain: str) -> SpfResult:
        return await check_host(
            resolver, "192.0.2.1", domain, f"a@{domain}", helo="h.test", receiver="r.test"
        )

    assert (await result("plain.test")).result == "none"
    assert (await result("nowhere.test")).result == "none"
    assert (await result("not-a-domain")).result == "none"
    assert (await result("soft.test")).result == "softfail"
    failed = await result("broken.test")
    assert failed.result == "temperror" and "SERVFAIL" in failed.reason
    looped = await result("loop.test")
    assert looped.result == "permerror" and "more than 10" in looped.reason


async def test_a_warm_check_asks_no_dns(zone):
    resolver = resolver_for(zone)
    args = (resolver, "192.0.2.25", "alice@sender.test", "mx.sender.test", "r.test")
    first = await verify_spf(*args)
    asked = len(zone.queries)
    assert await verify_spf(*args) == first
    assert len(zone.queries) == asked


def test_received_spf_header():
    result = SpfResult(
        "pass",
        "example.com",
        "mailfrom",
        reason="example.com matched ip4:192.0.2.0/24",
        sender="myname@example.com",
        helo="foo.example.com",
        client_ip="192.0.2.1",
        mechanism="ip4:192.0.2.0/24",
    )
    header = received_spf(result, "192.0.2.1", "mybox.example.org")
    assert header == (
        b"Received-SPF: pass (mybox.example.org: domain of myname@example.com designates\r\n"
        b" 192.0.2.1 as permitted sender) client-ip=192.0.2.1;\r\n"
        b' envelope-from="myname@example.com"; helo=foo.example.com;\r\n'
        b' receiver=mybox.example.org; identity=mailfrom; mechanism="ip4:192.0.2.0/24"\r\n'
    )
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    parsed = email.message_from_bytes(header + b"\r\n", policy=email.policy.default)
    assert str(parsed["Received-SPF"]).startswith("pass (mybox.example.org: domain of")


def test_received_spf_errors_quote_what_they_must():
    result = SpfResult(
        "permerror",
        "example.com",
        "helo",
        reason="term 'a:(x' is broken\\",
        sender="postmaster@example.com",
        helo="example.com",
    )
    header = received_spf(result, "2001:db8::1", "mx.test").decode()
    assert header.startswith("Received-SPF: permerror (mx.test: permanent error in processing")
    assert "'a:\\(x' is broken\\\\)" in header  # comment text: ( ) \ quoted
    assert 'client-ip="2001:db8::1";' in header  # ":" is no atext: a quoted-string
    assert "problem=\"term 'a:(x' is broken\\\\\";" in header
    assert header.endswith("identity=helo\r\n")
    unfolded = header.replace("\r\n ", " ")
    assert unfolded.count("\r\n") == 1


RFC_7208_7_4 = [  # section 7.4's examples: sender strong-bad@email.example.com, 192.0.2.3
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
]


@pytest.mark.parametrize(("spec", "expanded"), RFC_7208_7_4)
async def test_macro_examples_of_the_rfc(spec, expanded):
    context = macro_context("192.0.2.3")
    assert await expand(parse_domain_spec(spec), context) == expanded


async def test_macros_of_ipv6_and_explanations():
    context = macro_context("2001:db8::cb01")
    spec = parse_domain_spec("%{ir}.%{v}._spf.%{d2}")
    nibbles = "1.0.b.c." + "0." * 20 + "8.b.d.0.1.0.0.2"
    # RFC 7208 7.4 writes the nibbles in lowercase, the OpenSPF suite in uppercase; DNS
    # does not mind, and we follow the suite (its explanations show them).
    assert (await expand(spec, context)).lower() == f"{nibbles}.ip6._spf.example.com"
    text = parse_macro_string("%{c} %{r} %% %_ %-|%{L}|%{p}", explanation=True)
    assert await expand(text, context, domain=False) == (
        "2001:db8::cb01 mx.receiver.test %   %20|strong-bad|host.example.com"
    )
    for bad in ("%{c}.example.com", "%{x}.example.com", "%{d0}.example.com", "a%b.example.com"):
        with pytest.raises(MacroError):
            parse_domain_spec(bad)
    # A domain longer than 253 characters loses labels on the left (section 7.3).
    long = parse_domain_spec("%{d}." * 20 + "example.net")
    assert len(await expand(long, context)) <= 253


def macro_context(ip: str) -> MacroContext:
    async def validated(domain: str) -> str:
        return "host.example.com"

    return MacroContext(
        "strong-bad@email.example.com",
        "email.example.com",
        ipaddress.ip_address(ip),
        "mx.email.example.com",
        "mx.receiver.test",
        validated,
    )
