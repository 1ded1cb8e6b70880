"""DKIM verification (RFC 6376, RFC 8463, RFC 8301) through the one resolver, against keys
published on a loopback DNS server."""

from __future__ import annotations

import re

import pytest

from stalwart_py.inbound import dkim as inbound_dkim
from stalwart_py.inbound.dkim import verify_dkim
from tests.support.auth_world import (
    DATA,
    auth_world,
    ed25519_key,
    message,
    rsa_512_key,
    rsa_key,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def rsa():
    return rsa_key(2048)


@pytest.fixture(scope="module")
def ed():
    return ed25519_key()


@pytest.fixture
async def world():
    async with auth_world() as world:
        yield world


def verdicts(results):
    return [(r.result, r.domain, r.selector) for r in results]


async def test_rfc_8463_example_verifies_under_both_signatures(world):
    for line in (DATA / "rfc8463" / "keys.txt").read_text().splitlines():
        name, record = line.split(" ", 1)
        world.publish(name, "TXT", record)
    signed = (DATA / "rfc8463" / "signed.eml").read_bytes().replace(b"\n", b"\r\n")
    results = await verify_dkim(world.resolver, signed)
    assert verdicts(results) == [
        ("pass", "football.example.com", "brisbane"),
        ("pass", "football.example.com", "test"),
    ]
    ed_result, rsa_result = results
    assert ed_result.algorithm == "ed25519-sha256"
    assert ed_result.header_b == "/gCrinpcQOoI"
    assert ed_result.identity == "@football.example.com"
    assert rsa_result.algorithm == "rsa-sha256"
    # A changed header field breaks both signatures, a changed body both body hashes.
    changed = await verify_dkim(world.resolver, signed.replace(b"dinner", b"lunch"))
    assert [(r.result, r.reason) for r in changed] == [("fail", "signature did not verify")] * 2
    changed = await verify_dkim(world.resolver, signed.replace(b"hungry", b"angry"))
    assert [(r.result, r.reason) for r in changed] == [("fail", "body hash did not verify")] * 2


async def test_valid_rsa_and_ed25519_signatures_pass(world, rsa, ed):
    world.publish_key(rsa, "example.test", "rsa1")
    world.publish_key(ed, "example.test", "ed1")
    for key, selector in ((rsa, "rsa1"), (ed, "ed1")):
        signed = key.sign(message(), "example.test", selector)
        [result] = await verify_dkim(world.resolver, signed)
        assert (result.result, result.domain, result.selector) == ("pass", "example.test", selector)
        assert result.algorithm == key.algorithm.decode()
        assert len(result.header_b) >= 8


async def test_bad_body_hash_and_bad_signature_fail(world, rsa):
    world.publish_key(rsa, "example.test", "rsa1")
    signed = rsa.sign(message(), "example.test", "rsa1")
    [body] = await verify_dkim(world.resolver, signed.replace(b"noon", b"nine"))
    assert (body.result, body.reason) == ("fail", "body hash did not verify")
    [header] = await verify_dkim(world.resolver, signed.replace(b"Subject: Lunch", b"Subject: Pay"))
    assert (header.result, header.reason) == ("fail", "signature did not verify")
    # Another key published under the selector: the signature does not verify with it.
    world.publish_key(rsa_key(1024), "example.test", "other")
    forged = signed.replace(b"s=rsa1;", b"s=other;")
    [other] = await verify_dkim(world.resolver, forged)
    assert (other.result, other.selector) == ("fail", "other")


async def test_missing_key_is_permerror_and_revoked_key_fails(world, rsa):
    world.publish("example.test", "A", "192.0.2.1")
    signed = rsa.sign(message(), "example.test", "gone")
    [missing] = await verify_dkim(world.resolver, signed)
    assert missing.result == "permerror"
    assert "no key record" in missing.reason
    world.publish("revoked._domainkey.example.test", "TXT", "v=DKIM1; k=rsa; p=")
    [revoked] = await verify_dkim(world.resolver, rsa.sign(message(), "example.test", "revoked"))
    assert (revoked.result, revoked.reason) == ("fail", "key revoked (empty p=)")


async def test_dns_failure_is_temperror(world, ed):
    world.dns.servfail.add("ed1._domainkey.example.test")
    [result] = await verify_dkim(world.resolver, ed.sign(message(), "example.test", "ed1"))
    assert result.result == "temperror"


async def test_every_signature_gets_a_result(world, rsa, ed):
    """An author signature, a list's signature that broke, and one by a domain with no key."""
    world.publish_key(ed, "example.test", "ed1")
    world.publish_key(rsa, "lists.example.org", "list")
    signed = ed.sign(message(), "example.test", "ed1")
    signed = rsa.sign(signed, "lists.example.org", "list")
    signed = rsa.sign(signed, "nokey.example", "x")
    signed = signed.replace(b"Subject: Lunch", b"Subject: [list] Lunch")
    results = await verify_dkim(world.resolver, signed)
    assert [(r.result, r.domain) for r in results] == [
        ("permerror", "nokey.example"),
        ("fail", "lists.example.org"),
        ("fail", "example.test"),
    ]
    # Signed after the change, the list's signature passes while the author's stays broken.
    relisted = rsa.sign(signed, "lists.example.org", "list")
    results = await verify_dkim(world.resolver, relisted)
    assert [r.result for r in results] == ["pass", "permerror", "fail", "fail"]


async def test_rsa_sha1_and_short_keys_are_refused_by_policy(world, rsa):
    """RFC 8301: rsa-sha1 and RSA keys under 1024 bits are not valid, however well signed."""
    world.publish_key(rsa, "example.test", "rsa1")
    sha1 = rsa.sign(message(), "example.test", "rsa1", algorithm=b"rsa-sha1")
    [result] = await verify_dkim(world.resolver, sha1)
    assert (result.result, result.algorithm) == ("policy", "rsa-sha1")
    short = rsa_512_key()
    world.publish_key(short, "example.test", "short")
    [result] = await verify_dkim(world.resolver, short.sign(message(), "example.test", "short"))
    assert result.result == "policy"
    assert "512 bits" in result.reason


async def test_unusable_signatures_and_keys(world, rsa, ed):
    world.publish_key(rsa, "example.test", "rsa1")
    signed = rsa.sign(message(), "example.test", "rsa1")
    # An i= outside d= is a broken signature (neutral), not a failed one.
    [result] = await verify_dkim(
        world.resolver, signed.replace(b"i=@example.test", b"i=@evil.test")
    )
    assert result.result == "neutral"
    # A key of the other type than a= says, under a selector of the same domain.
    world.publish("mixed._domainkey.example.test", "TXT", ed.record)
    [result] = await verify_dkim(world.resolver, rsa.sign(message(), "example.test", "mixed"))
    assert result.result == "permerror"
    # A key record that is not for email.
    world.publish("web._domainkey.example.test", "TXT", rsa.record + "; s=tlsrpt")
    [result] = await verify_dkim(world.resolver, rsa.sign(message(), "example.test", "web"))
    assert result.result == "permerror"
    # A signature that does not sign From is unusable (RFC 6376 6.1.1); dkimpy will not make
    # one, so the tag is edited (which would break the signature too: neutral comes first).
    forged = re.sub(rb"h=[^;]*;", b"h=to;", signed, count=1)
    assert forged != signed
    [result] = await verify_dkim(world.resolver, forged)
    assert (result.result, result.reason) == ("neutral", "signature unusable: From is not signed")


async def test_bounds_on_signatures(world, ed, monkeypatch):
    world.publish_key(ed, "example.test", "ed1")
    signed = message()
    for _ in range(12):
        signed = ed.sign(signed, "example.test", "ed1")
    results = await verify_dkim(world.resolver, signed)
    assert [r.result for r in results] == ["pass"] * 10 + ["policy"] * 2
    # The key was asked for once, however many signatures name it.
    assert world.dns.queries.count(("ed1._domainkey.example.test", "TXT")) == 1
    monkeypatch.setattr(inbound_dkim, "MAX_REPORTED", 11)
    results = await verify_dkim(world.resolver, signed)
    assert [r.result for r in results] == ["pass"] * 10 + ["policy"]
    monkeypatch.setattr(inbound_dkim, "MAX_MESSAGE", 100)
    results = await verify_dkim(world.resolver, ed.sign(message(), "example.test", "ed1"))
    assert [r.result for r in results] == ["policy"]


async def test_large_message_is_verified_off_the_event_loop(world, rsa):
    world.publish_key(rsa, "example.test", "rsa1")
    big = message(body=b"All work and no play makes Jack a dull boy.\r\n" * 20_000)  # ~900 KB
    assert len(big) > inbound_dkim.THREAD_THRESHOLD
    [result] = await verify_dkim(world.resolver, rsa.sign(big, "example.test", "rsa1"))
    assert result.result == "pass"


async def test_unsigned_message_has_no_results(world):
    assert await verify_dkim(world.resolver, message()) == []


async def test_a_header_block_that_does_not_parse(world, ed):
    """A line that is no header field (dkimpy refuses the message): each signature found is a
    permerror, with the tags it shows."""
    world.publish_key(ed, "example.test", "ed1")
    signed = ed.sign(message(), "example.test", "ed1")
    broken = signed.replace(b"To: Bob", b"this is no field\r\nTo: Bob")
    [result] = await verify_dkim(world.resolver, broken)
    assert (result.result, result.domain, result.selector) == ("permerror", "example.test", "ed1")
    assert "does not parse" in result.reason


async def test_a_u_label_signing_domain_finds_its_key_under_the_a_label(world, ed):
    """RFC 8616: d= may be written in UTF-8; the key lives at the A-label name."""
    world.publish_key(ed, "xn--bcher-kva.example", "ed1")
    signed = ed.sign(message(), "bücher.example", "ed1")
    [result] = await verify_dkim(world.resolver, signed)
    assert (result.result, result.domain) == ("pass", "bücher.example")
    assert ("ed1._domainkey.xn--bcher-kva.example", "TXT") in world.dns.queries
