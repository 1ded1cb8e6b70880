"""ARC (RFC 8617) chains sealed with dkimpy's arc_sign, verified through the one resolver."""

from __future__ import annotations

import dkim
import pytest

from stalwart_py.inbound.arc import verify_arc
from stalwart_py.inbound.dkim import verify_dkim
from stalwart_py.resolver import Resolver
from tests.support.auth_world import auth_world, message, rsa_key

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def keys():
    return {"author": rsa_key(2048), "list": rsa_key(2048), "forwarder": rsa_key(1024)}


@pytest.fixture
async def world(keys):
    async with auth_world() as world:
        world.publish_key(keys["author"], "example.test", "a1")
        world.publish_key(keys["list"], "lists.example.org", "arc1")
        world.publish_key(keys["forwarder"], "fwd.example.net", "arc2")
        yield world


def seal(data: bytes, key, domain: str, selector: str, results: str) -> bytes:
    """What an intermediary does: record its Authentication-Results, then add an ARC set."""
    data = f"Authentication-Results: {domain}; {results}\r\n".encode() + data
    headers = dkim.arc_sign(
        data,
        selector.encode(),
        domain.encode(),
        key.private,
        domain.encode(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    assert headers, "dkimpy made no ARC set"
    return b"".join(headers) + data


def through_the_list(keys) -> bytes:
    """Signed by the author, then changed and sealed by a mailing list."""
    signed = keys["author"].sign(message(), "example.test", "a1")
    changed = signed.replace(b"Subject: Lunch", b"Subject: [friends] Lunch")
    changed += b"--\r\nfriends mailing list\r\n"
    return seal(
        changed, keys["list"], "lists.example.org", "arc1", "dkim=pass header.d=example.test"
    )


async def test_a_list_sealed_message_passes_arc_where_dkim_broke(world, keys):
    sealed = through_the_list(keys)
    [author] = await verify_dkim(world.resolver, sealed)
    assert (author.result, author.domain) == ("fail", "example.test")
    result = await verify_arc(world.resolver, sealed)
    assert (result.result, result.sealers) == ("pass", ("lists.example.org",))
    assert result.oldest_pass_results is not None
    assert "dkim=pass header.d=example.test" in result.oldest_pass_results


async def test_a_chain_of_two_sealers_in_instance_order(world, keys):
    sealed = through_the_list(keys)
    twice = seal(sealed, keys["forwarder"], "fwd.example.net", "arc2", "arc=pass")
    result = await verify_arc(world.resolver, twice)
    assert (result.result, result.sealers) == ("pass", ("lists.example.org", "fwd.example.net"))
    assert "header.d=example.test" in (result.oldest_pass_results or "")


async def test_changes_after_sealing_break_the_chain(world, keys):
    sealed = through_the_list(keys)
    result = await verify_arc(world.resolver, sealed.replace(b"Shall we", b"Should we"))
    assert result.result == "fail"
    assert result.sealers == ("lists.example.org",)
    # Sealed with another key than the one the sealer publishes (asked afresh: no cache).
    world.dns.records.pop("arc1._domainkey.lists.example.org")
    world.publish_key(rsa_key(1024), "lists.example.org", "arc1")
    fresh = Resolver(nameservers=[("127.0.0.1", world.dns.port)])
    assert (await verify_arc(fresh, sealed)).result == "fail"


async def test_a_missing_set_fails(world, keys):
    sealed = through_the_list(keys)
    twice = seal(sealed, keys["forwarder"], "fwd.example.net", "arc2", "arc=pass")
    # Drop instance 1's ARC-Seal: the chain has a hole.
    start = twice.index(b"ARC-Seal: i=1")
    end = twice.index(b"\r\n", twice.index(b"b=", start))
    while twice[end + 2 : end + 3] in (b" ", b"\t"):
        end = twice.index(b"\r\n", end + 2)
    broken = twice[:start] + twice[end + 2 :]
    result = await verify_arc(world.resolver, broken)
    assert result.result == "fail"


async def test_unsealed_message_is_none_and_dns_failure_fails(world, keys):
    result = await verify_arc(world.resolver, message())
    assert (result.result, result.sealers, result.oldest_pass_results) == ("none", (), None)
    world.dns.servfail.add("arc1._domainkey.lists.example.org")
    result = await verify_arc(world.resolver, through_the_list(keys))
    assert result.result == "fail"
    assert "temporary" in result.reason
