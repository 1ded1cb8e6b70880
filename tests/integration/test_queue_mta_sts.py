"""Outbound MTA-STS (RFC 8461): the receiving domain's policy, served over HTTPS by a test
server with a trustme certificate, decides where and how the queue delivers."""

from __future__ import annotations

import email
import email.policy
import json

import anyio
import pytest

from stalwart_py.config.outbound_tls import QueueMtaStsSettings
from stalwart_py.queue.mta_sts import PolicyError, fetch_policy, policy_context
from stalwart_py.queue.tlsrpt import utc_day
from stalwart_py.resolver import Resolver
from tests.support.policy_server import Answer, PolicyServer, policy
from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio

MX_ADDRESS = "127.0.0.21"


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        world.dns.ttl = 0  # every lookup asks the zone: the tests change it as they go
        yield world


@pytest.fixture
async def policies(world):
    server = PolicyServer(world.server_tls("mta-sts.remote.test"))
    await server.start()
    world.dns.add("mta-sts.remote.test", "A", "127.0.0.1")
    yield server
    await server.stop()


async def remote(world, policies, mode: str, *, mx: str = "mx.remote.test", cert=None):
    """remote.test: MX ``mx`` at MX_ADDRESS (a peer with a certificate for ``cert``, by
    default the MX name), an MTA-STS policy in ``mode`` listing mx.remote.test."""
    peer = await world.peer(MX_ADDRESS, tls_context=world.server_tls(cert or mx), name=mx)
    world.dns.add("remote.test", "MX", f"10 {mx}.")
    world.dns.add(mx, "A", MX_ADDRESS)
    world.dns.add("_mta-sts.remote.test", "TXT", '"v=STSv1; id=first1;"')
    policies.answers["mta-sts.remote.test"] = Answer(policy(mode, "mx.remote.test"))
    return peer


def manager(world, peer, policies, **overrides):
    sts = QueueMtaStsSettings(port=policies.port, timeout=5.0)
    return world.manager(port=peer.port, mta_sts=sts, **overrides)


async def results(world, domain="remote.test"):
    rows = await world.store.tls_results(utc_day(world.clock.now()))
    return [(r.policy, r.failure, r.count) for r in rows if r.domain == domain]


def result_types(rows):
    """The result types counted, each as often as it was (successes as "success")."""
    found = []
    for _, failure, count in rows:
        found += [json.loads(failure)["result-type"] if failure else "success"] * count
    return sorted(found)


async def test_enforce_delivers_over_verified_tls_and_caches_the_policy(world, policies):
    peer = await remote(world, policies, "enforce")
    queue_id = await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
    [message] = peer.received
    assert message.tls is True
    assert await world.store.queue_entry(queue_id) is None
    assert policies.requests == [("mta-sts.remote.test", "/.well-known/mta-sts.txt")]
    cached = await world.store.get_sts_policy("remote.test")
    assert cached.policy_id == "first1"
    assert cached.expires == pytest.approx(cached.fetched + 86400)
    [(policy_key, failure, count)] = await results(world)
    assert '"policy-type": "sts"' in policy_key and failure == "" and count == 1


async def test_enforce_refuses_an_mx_not_in_the_policy_then_bounces_naming_mta_sts(world, policies):
    peer = await remote(world, policies, "enforce", mx="mx.elsewhere.test")
    queue_id = await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies, max_age=3600.0)) as queue:
        await queue.flush()
        [recipient] = (await world.store.queue_entry(queue_id)).recipients
        assert recipient.status == "pending"  # deferred, a temporary failure
        assert "MTA-STS" in recipient.last_error and "mx.elsewhere.test" in recipient.last_error
        assert peer.connections == 0  # never even connected
        world.clock.advance(3601)
        await queue.flush()  # expired: the DSN is queued
        await queue.flush()  # and delivered to alice
    [dsn] = await world.inbox("alice@example.test")
    text = email.message_from_bytes(dsn, policy=email.policy.default).as_string()
    assert "4.4.7" in text and "MTA-STS policy of remote.test (enforce)" in text
    assert "validation-failure" in str(await results(world))


async def test_enforce_refuses_a_certificate_for_another_name(world, policies):
    peer = await remote(world, policies, "enforce", cert="wrong.test")
    queue_id = await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies, max_age=3600.0)) as queue:
        await queue.flush()
        [recipient] = (await world.store.queue_entry(queue_id)).recipients
        assert recipient.status == "pending"
        assert "MTA-STS policy of remote.test (enforce)" in recipient.last_error
        assert peer.received == []
        world.clock.advance(3601)
        await queue.flush()
        await queue.flush()
    [dsn] = await world.inbox("alice@example.test")
    assert b"MTA-STS" in dsn
    assert result_types(await results(world)) == ["certificate-host-mismatch"] * 2


async def test_testing_mode_delivers_anyway_and_counts_the_failure(world, policies):
    peer = await remote(world, policies, "testing", cert="wrong.test")
    await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
    [message] = peer.received
    assert message.tls is True  # opportunistic TLS, unverified, as without a policy
    assert result_types(await results(world)) == ["certificate-host-mismatch"]


async def test_policy_cached_until_the_id_changes_and_across_a_restart(world, policies):
    peer = await remote(world, policies, "enforce")
    await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
        await world.enqueue("carol@remote.test")
        await queue.flush()
        assert len(peer.received) == 2
        assert len(policies.requests) == 1  # the same id: the cached policy
        # A new policy (another MX only) under a new id: fetched and applied at once.
        policies.answers["mta-sts.remote.test"] = Answer(policy("enforce", "mx.other.test"))
        world.dns.records["_mta-sts.remote.test"] = [("TXT", '"v=STSv1; id=second2;"')]
        queue_id = await world.enqueue("dave@remote.test")
        await queue.flush()
        assert len(policies.requests) == 2
        assert len(peer.received) == 2
        assert "MTA-STS" in (await world.store.queue_entry(queue_id)).recipients[0].last_error
    # A restart keeps the policy: the TXT record gone and the web server down change nothing.
    del world.dns.records["_mta-sts.remote.test"]
    policies.answers.clear()
    queue_id = await world.enqueue("erin@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
    assert len(peer.received) == 2
    assert "mx.other.test" in (await world.store.queue_entry(queue_id)).recipients[0].last_error


async def test_a_policy_that_cannot_be_fetched_is_as_no_policy(world, policies):
    peer = await remote(world, policies, "enforce", cert="wrong.test")
    policies.answers["mta-sts.remote.test"] = Answer("", 301, location="https://x.test/")
    await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
    assert len(peer.received) == 1  # RFC 8461 3.3: delivered as if no policy
    assert "sts-policy-fetch-error" in result_types(await results(world))


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        (Answer("", 302, location="https://elsewhere.test/"), "sts-policy-fetch-error"),
        (
            Answer(policy("enforce", "mx.remote.test"), content_type="text/html"),
            "sts-policy-invalid",
        ),
        (Answer("x" * 70_000), "sts-policy-fetch-error"),
        (Answer("not found", 404), "sts-policy-fetch-error"),
    ],
)
async def test_fetch_follows_rfc_8461_3_3(world, policies, answer, result):
    policies.answers["mta-sts.remote.test"] = answer
    resolver = Resolver([("127.0.0.1", world.dns.port)], timeout=2.0)
    with pytest.raises(PolicyError) as caught:
        await fetch_policy(
            "remote.test",
            resolver,
            port=policies.port,
            timeout=5.0,
            context=policy_context(world.ca_file),
        )
    assert caught.value.result_type == result


async def test_fetch_needs_a_certificate_for_the_policy_host(world):
    server = PolicyServer(world.server_tls("www.remote.test"))  # a trusted CA, another name
    await server.start()
    world.dns.add("mta-sts.remote.test", "A", "127.0.0.1")
    server.answers["mta-sts.remote.test"] = Answer(policy("enforce", "mx.remote.test"))
    resolver = Resolver([("127.0.0.1", world.dns.port)], timeout=2.0)
    try:
        with pytest.raises(PolicyError) as caught:
            await fetch_policy(
                "remote.test", resolver, port=server.port, timeout=5.0,
                context=policy_context(world.ca_file),
            )  # fmt: skip
    finally:
        await server.stop()
    assert caught.value.result_type == "sts-webpki-invalid"


async def test_dane_takes_precedence_over_mta_sts(world, policies):
    # A certificate MTA-STS (PKIX) would refuse, but authenticated TLSA records vouch for.
    import hashlib
    import ssl

    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    issued = trustme.CA().issue_cert("mx.remote.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    peer = await remote(world, policies, "enforce")
    peer.tls_context = context
    key = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes()).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    world.dns.add("_25._tcp.mx.remote.test", "TLSA", f"3 1 1 {hashlib.sha256(spki).hexdigest()}")
    world.dns.authenticated |= {"remote.test", "_25._tcp.mx.remote.test"}
    await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
    [message] = peer.received
    assert message.tls is True
    assert result_types(await results(world)) == ["success"]
    assert '"policy-type": "tlsa"' in (await results(world))[0][0]


async def test_a_day_old_policy_is_refreshed_in_the_background(world, policies):
    peer = await remote(world, policies, "enforce")
    policies.answers["mta-sts.remote.test"] = Answer(
        policy("enforce", "mx.remote.test", max_age=7 * 86400)
    )
    await world.enqueue("bob@remote.test")
    async with running(manager(world, peer, policies)) as queue:
        await queue.flush()
        first = await world.store.get_sts_policy("remote.test")
        world.clock.advance(2 * 86400)  # still cached (7 days), but worth asking again
        refreshed = queue.outbound_tls.policies.refreshed
        await world.enqueue("carol@remote.test")
        await queue.flush()
        assert len(peer.received) == 2  # delivered with the cached policy meanwhile
        with anyio.fail_after(20):
            await refreshed.wait()
    assert len(policies.requests) == 2
    assert (await world.store.get_sts_policy("remote.test")).fetched > first.fetched
