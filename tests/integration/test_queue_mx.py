"""Outbound delivery by MX: preference and fallback, the implicit MX, DNS failures, TLS."""

from __future__ import annotations

import socket

import pytest

from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        yield world


async def pending(world, queue_id):
    entry = await world.store.queue_entry(queue_id)
    return [r for r in entry.recipients if r.status == "pending"] if entry else []


async def test_mx_preference_and_fallback_to_the_next_mx(world):
    preferred = await world.peer("127.0.0.3", name="mx2.remote.test")
    other = await world.peer("127.0.0.4", preferred.port, name="mx3.remote.test")
    world.dns.add("remote.test", "MX", "30 mx3.remote.test.")
    world.dns.add("remote.test", "MX", "10 mx1.remote.test.")  # nothing listens there
    world.dns.add("remote.test", "MX", "20 mx2.remote.test.")
    for index in (1, 2, 3):
        world.dns.add(f"mx{index}.remote.test", "A", f"127.0.0.{index + 1}")
    queue_id = await world.enqueue("bob@remote.test", "carol@remote.test")
    async with running(world.manager(port=preferred.port)) as manager:
        await manager.flush()
    [message] = preferred.received
    assert other.received == []
    assert message.mail_from == "alice@example.test"
    assert message.rcpt_tos == ["bob@remote.test", "carol@remote.test"]  # one transaction
    assert message.data.replace(b"\r\n", b"\n") == (
        b"From: Alice <alice@example.test>\nTo: bob@remote.test\nSubject: hello\n"
        b"Message-ID: <1@example.test>\nDate: Mon, 1 Jun 2026 10:00:00 +0000\n\n"
        b"Hello Bob.\n.leading dot\n"
    )
    assert await world.store.queue_entry(queue_id) is None  # delivered: gone from the queue
    assert ("mx1.remote.test", "A") in world.dns.queries  # it did try the preferred one


async def test_a_record_fallback_without_mx(world):
    peer = await world.peer("127.0.0.5")
    world.dns.add("plain.test", "A", "127.0.0.5")
    queue_id = await world.enqueue("bob@plain.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["bob@plain.test"]]
    assert await world.store.queue_entry(queue_id) is None


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_aaaa_record_fallback_without_mx(world):
    peer = await world.peer("::1")
    world.dns.add("six.test", "AAAA", "::1")
    await world.enqueue("bob@six.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["bob@six.test"]]


async def test_nonexistent_domain_and_null_mx_fail_at_once(world):
    world.dns.add("nomail.test", "MX", "0 .")
    first = await world.enqueue("bob@nowhere.test")
    second = await world.enqueue("bob@nomail.test")
    async with running(world.manager()) as manager:
        await manager.flush()
        assert await world.store.queue_entry(first) is None
        assert await world.store.queue_entry(second) is None
        await manager.flush()  # the two bounces, to alice's INBOX
    bounces = await world.inbox("alice@example.test")
    statuses = sorted(
        line for b in bounces for line in b.split(b"\r\n") if line.startswith(b"Status:")
    )
    assert statuses == [b"Status: 5.1.10", b"Status: 5.1.2"]


async def test_dns_failure_is_transient(world):
    world.dns.servfail.add("broken.test")
    queue_id = await world.enqueue("bob@broken.test")
    async with running(world.manager()) as manager:
        await manager.flush()
    [recipient] = await pending(world, queue_id)
    assert recipient.attempts == 1
    assert "DNS lookup of MX broken.test failed" in recipient.last_error
    assert recipient.next_attempt == pytest.approx(world.clock.now() + 300, abs=5)


async def test_opportunistic_starttls_without_verification(world, tmp_path):
    # A certificate from a CA the queue does not trust, for another name: still encrypted.
    import trustme

    other_ca = trustme.CA()
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_ca.issue_cert("someone.else.test").configure_cert(context)
    peer = await world.peer("127.0.0.6", tls_context=context)
    world.dns.add("remote.test", "A", "127.0.0.6")
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    [message] = peer.received
    assert message.tls is True


async def test_plaintext_when_the_server_offers_no_starttls(world):
    peer = await world.peer("127.0.0.6")
    world.dns.add("remote.test", "A", "127.0.0.6")
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    [message] = peer.received
    assert message.tls is False


async def test_required_tls_verified_against_the_mx_name(world):
    peer = await world.peer("127.0.0.7", tls_context=world.server_tls("mx.secure.test"))
    world.dns.add("secure.test", "MX", "10 mx.secure.test.")
    world.dns.add("mx.secure.test", "A", "127.0.0.7")
    await world.enqueue("bob@secure.test")
    async with running(world.manager(port=peer.port, tls_require=["secure.test"])) as manager:
        await manager.flush()
    [message] = peer.received
    assert message.tls is True


async def test_required_tls_without_starttls_is_not_delivered(world):
    peer = await world.peer("127.0.0.7")  # offers no STARTTLS
    world.dns.add("secure.test", "MX", "10 mx.secure.test.")
    world.dns.add("mx.secure.test", "A", "127.0.0.7")
    queue_id = await world.enqueue("bob@secure.test")
    async with running(world.manager(port=peer.port, tls_require=["secure.test"])) as manager:
        await manager.flush()
    assert peer.received == []
    [recipient] = await pending(world, queue_id)
    assert "TLS is required but mx.secure.test does not offer STARTTLS" in recipient.last_error


async def test_required_tls_with_a_certificate_for_another_name_is_not_delivered(world):
    peer = await world.peer("127.0.0.7", tls_context=world.server_tls("wrong.test"))
    world.dns.add("secure.test", "MX", "10 mx.secure.test.")
    world.dns.add("mx.secure.test", "A", "127.0.0.7")
    queue_id = await world.enqueue("bob@secure.test")
    async with running(world.manager(port=peer.port, tls_require=["secure.test"])) as manager:
        await manager.flush()
    assert peer.received == []
    [recipient] = await pending(world, queue_id)
    assert "TLS handshake with mx.secure.test failed" in recipient.last_error
