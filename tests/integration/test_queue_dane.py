"""Outbound DANE (RFC 7672): TLSA records the test DNS server answers with the AD bit decide
whether the MX certificate is good, whatever PKIX would say; without AD they are ignored."""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from stalwart_py.queue.tlsrpt import utc_day
from stalwart_py.resolver import Resolver
from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio

MX_ADDRESS = "127.0.0.22"
TLSA_NAME = "_25._tcp.mx.remote.test"


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        world.dns.ttl = 0
        yield world


def server_context(
    issued: trustme.LeafCert, anchor_pem: bytes | None = None, tmp: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    if anchor_pem is not None and tmp is not None:
        # The chain with its trust anchor, as RFC 7672 3.2.2 asks of DANE-TA servers.
        chain = tmp / f"chain-{id(issued)}.pem"
        chain.write_bytes(b"".join(b.bytes() for b in issued.cert_chain_pems) + anchor_pem)
        key = tmp / f"key-{id(issued)}.pem"
        issued.private_key_pem.write_to_path(str(key))
        context.load_cert_chain(chain, key)
    return context


def spki_sha256(pem: bytes) -> str:
    certificate = x509.load_pem_x509_certificate(pem)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cert_sha256(pem: bytes) -> str:
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    ).hexdigest()


async def remote(world, context: ssl.SSLContext, *tlsa: str, authenticated: bool = True):
    peer = await world.peer(MX_ADDRESS, tls_context=context, name="mx.remote.test")
    world.dns.add("remote.test", "MX", "10 mx.remote.test.")
    world.dns.add("mx.remote.test", "A", MX_ADDRESS)
    for record in tlsa:
        world.dns.add(TLSA_NAME, "TLSA", record)
    if authenticated:
        world.dns.authenticated |= {"remote.test", TLSA_NAME}
    return peer


async def counted(world):
    rows = await world.store.tls_results(utc_day(world.clock.now()))
    found = []
    for row in rows:
        failure = json.loads(row.failure)["result-type"] if row.failure else ""
        found.append((json.loads(row.policy)["policy-type"], failure))
    return found


async def test_resolver_reports_the_ad_bit_and_parses_tlsa(world):
    world.dns.add(TLSA_NAME, "TLSA", "3 1 1 " + "ab" * 32)
    world.dns.add("insecure.test", "TLSA", "3 1 1 " + "cd" * 32)
    world.dns.authenticated.add(TLSA_NAME)
    resolver = Resolver([("127.0.0.1", world.dns.port)], timeout=2.0)
    [record], authenticated = await resolver.tlsa(TLSA_NAME)
    assert authenticated is True
    assert (record.usage, record.selector, record.matching) == (3, 1, 1)
    assert record.data == bytes.fromhex("ab" * 32)
    [_], authenticated = await resolver.tlsa("insecure.test")
    assert authenticated is False
    assert await resolver.mx_authenticated("insecure.test") is False


async def test_dane_ee_matching_delivers_over_tls_without_pkix(world):
    # A certificate from a CA the queue does not trust, and for another name: DANE-EE
    # checks neither (RFC 7672 3.1.1), only the key.
    issued = trustme.CA().issue_cert("not-the-mx.test")
    pem = issued.cert_chain_pems[0].bytes()
    peer = await remote(world, server_context(issued), f"3 1 1 {spki_sha256(pem)}")
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as queue:
        await queue.flush()
    [message] = peer.received
    assert message.tls is True
    assert await counted(world) == [("tlsa", "")]


async def test_dane_ee_not_matching_is_not_delivered(world):
    issued = world.ca.issue_cert("mx.remote.test")  # PKIX would accept it: DANE decides
    peer = await remote(world, server_context(issued), "3 1 1 " + "00" * 32, "3 0 1 " + "11" * 32)
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as queue:
        await queue.flush()
    assert peer.received == []
    [recipient] = (await world.store.queue_entry(queue_id)).recipients
    assert recipient.status == "pending"
    assert "DANE" in recipient.last_error and "TLSA" in recipient.last_error
    assert await counted(world) == [("tlsa", "tlsa-invalid")]


async def test_tlsa_without_ad_is_ignored(world):
    issued = trustme.CA().issue_cert("someone.else.test")
    peer = await remote(world, server_context(issued), "3 1 1 " + "00" * 32, authenticated=False)
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as queue:
        await queue.flush()
    [message] = peer.received  # opportunistic TLS, as if there were no TLSA records
    assert message.tls is True
    assert ("tlsa", "tlsa-invalid") not in await counted(world)


async def test_dane_ta_checks_the_chain_and_the_name(world):
    anchor = trustme.CA()
    anchor_pem = anchor.cert_pem.bytes()
    record = f"2 0 1 {cert_sha256(anchor_pem)}"
    good = server_context(anchor.issue_cert("mx.remote.test"), anchor_pem, world.tmp)
    peer = await remote(world, good, record)
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as queue:
        await queue.flush()
        assert len(peer.received) == 1
        # The same anchor, but a certificate for another name: DANE-TA checks the name.
        other = anchor.issue_cert("other.test")
        peer.tls_context = server_context(other, anchor_pem, world.tmp)
        queue_id = await world.enqueue("carol@remote.test")
        await queue.flush()
    assert len(peer.received) == 1
    assert "DANE" in (await world.store.queue_entry(queue_id)).recipients[0].last_error


async def test_a_tlsa_lookup_failure_for_a_secure_mx_defers(world):
    peer = await world.peer(MX_ADDRESS, name="mx.remote.test")
    world.dns.add("remote.test", "MX", "10 mx.remote.test.")
    world.dns.add("mx.remote.test", "A", MX_ADDRESS)
    world.dns.authenticated.add("remote.test")
    world.dns.servfail.add(TLSA_NAME)
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as queue:
        await queue.flush()
    assert peer.connections == 0
    assert "TLSA lookup" in (await world.store.queue_entry(queue_id)).recipients[0].last_error
