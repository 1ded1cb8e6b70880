"""DMARC (RFC 7489) through the one resolver, with policy records on a loopback DNS server."""

from __future__ import annotations

import random

import pytest

from stalwart_py.inbound import dmarc
from stalwart_py.inbound.dkim import DkimResult, verify_dkim
from stalwart_py.inbound.dmarc import (
    from_domains,
    organizational_domain,
    parse_record,
    verify_dmarc,
)
from stalwart_py.inbound.spf import SpfResult, verify_spf
from tests.support.auth_world import auth_world, ed25519_key, message

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world():
    async with auth_world() as world:
        yield world


def spf(result: str = "none", domain: str = "example.test") -> SpfResult:
    return SpfResult(result, domain, "mailfrom")


def dkim(result: str = "pass", domain: str = "example.test") -> list[DkimResult]:
    return [DkimResult(result, domain, "sel", "ed25519-sha256", "abcdefgh", "")]


@pytest.mark.parametrize(
    ("domain", "organization"),
    [
        ("example.test", "example.test"),
        ("a.b.example.test", "example.test"),
        ("mail.example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),  # a public suffix is its own
        ("Mail.Example.COM.", "example.com"),
        ("alice.blogspot.com", "alice.blogspot.com"),  # the list's private section counts
    ],
)
def test_organizational_domain_from_the_shipped_list(domain, organization):
    assert organizational_domain(domain) == organization


def test_records_parse_with_defaults_and_fallbacks():
    record = parse_record("v=DMARC1; p=reject")
    assert record is not None
    assert (record.policy, record.subdomain_policy, record.adkim, record.aspf, record.pct) == (
        "reject",
        "reject",
        "r",
        "r",
        100,
    )
    record = parse_record("v=DMARC1; p=quarantine; sp=none; adkim=s; aspf=s; pct=20; x=1")
    assert record is not None
    assert (record.subdomain_policy, record.adkim, record.aspf, record.pct) == (
        "none",
        "s",
        "s",
        20,
    )
    # No valid p=: with a report address it reads as p=none, without one it is no policy.
    record = parse_record("v=DMARC1; p=bogus; rua=mailto:d@example.test")
    assert record is not None and record.policy == "none"
    assert parse_record("v=DMARC1; p=bogus") is None
    assert parse_record("v=DMARC1; rua=none") is None


def test_from_domains():
    assert from_domains(b"From: A <a@Example.TEST>\r\nTo: b@x.test\r\n\r\nhi\r\n") == [
        "example.test"
    ]
    both = b"From: a@one.test, b@two.test, c@ONE.test\r\n\r\n"
    assert from_domains(both) == ["one.test", "two.test"]
    assert from_domains(b"From: a@one.test\r\nFrom: b@two.test\r\n\r\n") == ["one.test", "two.test"]
    assert from_domains(b"From: undisclosed\r\nSubject: x\r\n\r\n") == []
    assert from_domains(b"Subject: x\r\n\r\n") == []
    # SMTPUTF8 mail (RFC 6532): the IDN domain in its A-label form, as DNS and d= use it.
    utf8 = "From: Jörg <jörg@Bücher.example>\r\n\r\n".encode()
    assert from_domains(utf8) == ["xn--bcher-kva.example"]
    assert from_domains(b'From: "a@evil.test" <b@good.test>\r\n\r\n') == ["good.test"]
    assert from_domains(b"from : Ann\r\n <a@folded.test>\r\n\r\n") == ["folded.test"]
    # the header block ends at the blank line, or at a line that is not a field
    assert from_domains(b"Subject: x\r\n\r\nFrom: a@body.test\r\n") == []
    assert from_domains(b"Subject: x\r\nnot a field\r\nFrom: a@body.test\r\n\r\n") == []


async def test_aligned_dkim_passes_relaxed_and_strict(world):
    world.publish("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    result = await verify_dmarc(world.resolver, "example.test", spf(), dkim("pass", "example.test"))
    assert (result.result, result.aligned_by, result.policy) == ("pass", "dkim", "reject")
    assert result.domain == "example.test"
    # Relaxed: a signature by a subdomain (or the parent) of the From domain is aligned.
    result = await verify_dmarc(
        world.resolver, "example.test", spf(), dkim("pass", "mail.example.test")
    )
    assert (result.result, result.aligned_by) == ("pass", "dkim")
    world.publish("_dmarc.strict.test", "TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")
    result = await verify_dmarc(
        world.resolver, "strict.test", spf(), dkim("pass", "mail.strict.test")
    )
    assert (result.result, result.policy) == ("fail", "reject")
    result = await verify_dmarc(world.resolver, "strict.test", spf(), dkim("pass", "strict.test"))
    assert result.result == "pass"


async def test_aligned_spf_passes_relaxed_and_strict(world):
    world.publish("_dmarc.example.test", "TXT", "v=DMARC1; p=quarantine")
    world.publish("_dmarc.strict.test", "TXT", "v=DMARC1; p=quarantine; aspf=s")
    result = await verify_dmarc(
        world.resolver, "example.test", spf("pass", "bounce.example.test"), []
    )
    assert (result.result, result.aligned_by) == ("pass", "spf")
    result = await verify_dmarc(
        world.resolver, "strict.test", spf("pass", "bounce.strict.test"), []
    )
    assert (result.result, result.policy) == ("fail", "quarantine")
    # Only a pass counts: softfail or a failed signature of the right domain align nothing.
    result = await verify_dmarc(
        world.resolver, "example.test", spf("softfail", "example.test"), dkim("fail")
    )
    assert result.result == "fail"


@pytest.mark.parametrize("policy", ["none", "quarantine", "reject"])
async def test_unaligned_mail_fails_with_the_published_policy(world, policy):
    world.publish("_dmarc.example.test", "TXT", f"v=DMARC1; p={policy}; rua=mailto:d@example.test")
    result = await verify_dmarc(
        world.resolver, "example.test", spf("pass", "other.test"), dkim("pass", "other.test")
    )
    assert (result.result, result.policy, result.aligned_by) == ("fail", policy, None)
    assert result.record_domain == "example.test"


async def test_subdomains_take_sp_from_the_organizational_record(world):
    world.publish("_dmarc.example.test", "TXT", "v=DMARC1; p=none; sp=reject")
    result = await verify_dmarc(world.resolver, "news.example.test", spf(), [])
    assert (result.result, result.policy, result.record_domain) == (
        "fail",
        "reject",
        "example.test",
    )
    result = await verify_dmarc(world.resolver, "example.test", spf(), [])
    assert (result.result, result.policy) == ("fail", "none")
    # A subdomain with its own record follows its own p=.
    world.publish("_dmarc.shop.example.test", "TXT", "v=DMARC1; p=quarantine")
    result = await verify_dmarc(world.resolver, "shop.example.test", spf(), [])
    assert (result.policy, result.record_domain) == ("quarantine", "shop.example.test")
    # Without sp=, subdomains take p=.
    world.publish("_dmarc.plain.test", "TXT", "v=DMARC1; p=reject")
    result = await verify_dmarc(world.resolver, "a.b.plain.test", spf(), [])
    assert result.policy == "reject"
    assert ("_dmarc.a.b.plain.test", "TXT") in world.dns.queries
    assert ("_dmarc.b.plain.test", "TXT") not in world.dns.queries  # no tree walk (RFC 7489)


async def test_no_record_one_too_many_or_not_dmarc_is_none(world):
    result = await verify_dmarc(world.resolver, "example.test", spf(), dkim("fail"))
    assert (result.result, result.policy) == ("none", "none")
    world.publish("_dmarc.two.test", "TXT", "v=DMARC1; p=reject")
    world.publish("_dmarc.two.test", "TXT", "v=DMARC1; p=none")
    result = await verify_dmarc(world.resolver, "two.test", spf(), [])
    assert result.result == "none"
    world.publish("_dmarc.spf.test", "TXT", "v=spf1 -all")
    assert (await verify_dmarc(world.resolver, "spf.test", spf(), [])).result == "none"


async def test_dns_failure_is_temperror(world):
    world.dns.servfail.add("_dmarc.example.test")
    result = await verify_dmarc(world.resolver, "example.test", spf(), [])
    assert (result.result, result.policy) == ("temperror", "none")
    # At the organizational domain too.
    world.dns.servfail.add("_dmarc.org.test")
    result = await verify_dmarc(world.resolver, "mail.org.test", spf(), [])
    assert result.result == "temperror"


async def test_several_or_no_from_domains(world):
    world.publish("_dmarc.one.test", "TXT", "v=DMARC1; p=reject")
    result = await verify_dmarc(world.resolver, ["one.test", "two.test"], spf(), dkim())
    assert result.result == "permerror"
    result = await verify_dmarc(world.resolver, ["one.test", "ONE.test"], spf(), [])
    assert (result.result, result.policy) == ("fail", "reject")  # one domain, named twice
    result = await verify_dmarc(world.resolver, [], spf(), [])
    assert result.result == "none"


async def test_pct_and_testing_lower_the_policy(world):
    world.publish("_dmarc.zero.test", "TXT", "v=DMARC1; p=reject; pct=0")
    world.publish("_dmarc.testing.test", "TXT", "v=DMARC1; p=quarantine; t=y")
    world.publish("_dmarc.all.test", "TXT", "v=DMARC1; p=quarantine; pct=100")
    for domain, policy, published in [
        ("zero.test", "quarantine", "reject"),
        ("testing.test", "none", "quarantine"),
        ("all.test", "quarantine", "quarantine"),
    ]:
        result = await verify_dmarc(world.resolver, domain, spf(), [])
        assert (result.result, result.policy, result.published_policy) == (
            "fail",
            policy,
            published,
        )


async def test_a_signed_message_end_to_end(world):
    """DKIM verified through the resolver, then DMARC on its results."""
    key = ed25519_key()
    world.publish_key(key, "example.test", "ed1")
    world.publish("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    signed = key.sign(message("alice@example.test"), "example.test", "ed1")
    [author] = from_domains(signed)
    result = await verify_dmarc(
        world.resolver, author, spf(), await verify_dkim(world.resolver, signed)
    )
    assert (result.result, result.aligned_by) == ("pass", "dkim")
    spoofed = signed.replace(b"alice@example.test", b"payments@example.test")
    result = await verify_dmarc(
        world.resolver, author, spf(), await verify_dkim(world.resolver, spoofed)
    )
    assert (result.result, result.policy) == ("fail", "reject")


async def test_spf_through_the_resolver_aligns(world):
    """SPF checked for real (inbound.spf) for a bounce address of the author's domain."""
    world.publish("bounces.example.test", "TXT", "v=spf1 ip4:192.0.2.7 -all")
    world.publish("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    mailfrom, _helo = await verify_spf(
        world.resolver, "192.0.2.7", "b-123@bounces.example.test", "mx.example.test", "mx.test"
    )
    assert mailfrom.result == "pass"
    result = await verify_dmarc(world.resolver, "example.test", mailfrom, [])
    assert (result.result, result.aligned_by) == ("pass", "spf")
    elsewhere, _helo = await verify_spf(
        world.resolver, "198.51.100.9", "b-123@bounces.example.test", "mx.evil.test", "mx.test"
    )
    assert elsewhere.result == "fail"
    result = await verify_dmarc(world.resolver, "example.test", elsewhere, [])
    assert (result.result, result.policy) == ("fail", "reject")


async def test_pct_samples_messages(world, monkeypatch):
    """pct=50: about half the failing messages get p=, the rest the next lower policy."""
    monkeypatch.setattr(dmarc, "_sample", random.Random(7489))
    world.publish("_dmarc.half.test", "TXT", "v=DMARC1; p=reject; pct=50")
    policies = [
        (await verify_dmarc(world.resolver, "half.test", spf(), [])).policy for _ in range(200)
    ]
    assert set(policies) == {"reject", "quarantine"}
    assert 70 <= policies.count("reject") <= 130
