"""iprev (RFC 8601 2.7.3): forward-confirmed reverse DNS through the one resolver."""

from __future__ import annotations

import dns.reversename
import pytest

from stalwart_py.inbound import iprev
from stalwart_py.inbound.iprev import verify_iprev
from tests.support.auth_world import auth_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world():
    async with auth_world() as world:
        yield world


def reverse(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)


async def test_pass_when_a_ptr_name_resolves_back(world):
    world.publish(reverse("192.0.2.25"), "PTR", "mx.example.test.")
    world.publish("mx.example.test", "A", "192.0.2.25")
    result = await verify_iprev(world.resolver, "192.0.2.25")
    assert (result.result, result.ptr, result.ip) == ("pass", "mx.example.test", "192.0.2.25")
    world.publish(reverse("2001:db8::25"), "PTR", "mx6.example.test.")
    world.publish("mx6.example.test", "AAAA", "2001:db8::25")
    result = await verify_iprev(world.resolver, "2001:db8::25")
    assert (result.result, result.ptr) == ("pass", "mx6.example.test")
    # An IPv4-mapped IPv6 peer (a dual-stack listener) is checked as the IPv4 address.
    result = await verify_iprev(world.resolver, "::ffff:192.0.2.25")
    assert (result.result, result.ip) == ("pass", "192.0.2.25")


async def test_one_of_several_names_is_enough(world):
    world.publish(reverse("192.0.2.26"), "PTR", "stale.example.test.")
    world.publish(reverse("192.0.2.26"), "PTR", "good.example.test.")
    world.publish("stale.example.test", "A", "192.0.2.99")
    world.publish("good.example.test", "A", "192.0.2.1")
    world.publish("good.example.test", "A", "192.0.2.26")
    result = await verify_iprev(world.resolver, "192.0.2.26")
    assert (result.result, result.ptr) == ("pass", "good.example.test")


async def test_fail_when_no_name_leads_back(world):
    world.publish(reverse("192.0.2.27"), "PTR", "liar.example.test.")
    world.publish(reverse("192.0.2.27"), "PTR", "gone.example.test.")
    world.publish("liar.example.test", "A", "192.0.2.99")
    world.publish("liar.example.test", "AAAA", "2001:db8::27")  # the other family counts not
    result = await verify_iprev(world.resolver, "192.0.2.27")
    assert result.result == "fail"
    assert result.ptr in {"liar.example.test", "gone.example.test"}


async def test_permerror_without_ptr_data(world):
    result = await verify_iprev(world.resolver, "192.0.2.28")  # NXDOMAIN
    assert (result.result, result.ptr) == ("permerror", None)
    world.publish(reverse("192.0.2.29"), "TXT", "no PTR here")  # NODATA
    assert (await verify_iprev(world.resolver, "192.0.2.29")).result == "permerror"


async def test_temperror_when_dns_fails(world):
    world.dns.servfail.add(reverse("192.0.2.30"))
    assert (await verify_iprev(world.resolver, "192.0.2.30")).result == "temperror"
    world.publish(reverse("192.0.2.31"), "PTR", "flaky.example.test.")
    world.dns.servfail.add("flaky.example.test")
    result = await verify_iprev(world.resolver, "192.0.2.31")
    assert (result.result, result.ptr) == ("temperror", "flaky.example.test")


async def test_ptr_names_followed_are_bounded(world, monkeypatch):
    monkeypatch.setattr(iprev, "MAX_NAMES", 3)
    for n in range(8):
        world.publish(reverse("192.0.2.32"), "PTR", f"n{n}.example.test.")
        world.publish(f"n{n}.example.test", "A", "192.0.2.32" if n == 7 else "192.0.2.1")
    result = await verify_iprev(world.resolver, "192.0.2.32")
    forward = [name for name, kind in world.dns.queries if kind == "A"]
    assert len(forward) == 3
    assert result.result in {"fail", "pass"}  # which 3 names come first is the server's order
    assert (result.result == "pass") == ("n7.example.test" in forward)
