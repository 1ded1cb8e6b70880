"""Smarthost with AUTH, per-domain routes, connection reuse and concurrency."""

from __future__ import annotations

import pytest

from stalwart_py.config.schema import RelaySettings, RouteSettings
from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        yield world


async def test_smarthost_with_starttls_and_auth_takes_every_domain_in_one_transaction(world):
    peer = await world.peer(
        "127.0.0.1",
        name="smarthost.test",
        tls_context=world.server_tls("127.0.0.1"),
        credentials=("relayuser", "s3cret"),
    )
    relay = RelaySettings(host="127.0.0.1", port=peer.port, user="relayuser", password="s3cret")
    await world.enqueue("bob@remote.test", "dora@elsewhere.test")  # no DNS records at all
    async with running(world.manager(relay=relay)) as manager:
        await manager.flush()
    [message] = peer.received
    assert message.rcpt_tos == ["bob@remote.test", "dora@elsewhere.test"]
    assert message.tls is True
    assert message.login == "relayuser"
    assert world.dns.queries == []  # a smarthost needs no MX lookup


async def test_smarthost_refusing_the_password_defers(world):
    peer = await world.peer(
        "127.0.0.1", tls_context=world.server_tls("127.0.0.1"), credentials=("relayuser", "right")
    )
    relay = RelaySettings(host="127.0.0.1", port=peer.port, user="relayuser", password="wrong")
    queue_id = await world.enqueue("bob@remote.test")
    async with running(world.manager(relay=relay)) as manager:
        await manager.flush()
    assert peer.received == []
    [recipient] = (await world.store.queue_entry(queue_id)).recipients
    assert recipient.status == "pending"
    assert "535" in recipient.last_error


async def test_smarthost_with_implicit_tls(world):
    import ssl

    from aiosmtpd.smtp import SMTP

    from tests.support.mail_peers import Peer

    # aiosmtpd serves implicit TLS when the listening socket has the SSL context.
    peer = Peer(name="submissions.test")
    context = world.server_tls("127.0.0.1")
    import asyncio

    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(peer, hostname=peer.name), "127.0.0.1", 0, ssl=context
    )
    try:
        port = server.sockets[0].getsockname()[1]
        relay = RelaySettings(host="127.0.0.1", port=port, tls="implicit")
        await world.enqueue("bob@remote.test")
        async with running(world.manager(relay=relay)) as manager:
            await manager.flush()
    finally:
        server.close()
    [message] = peer.received
    assert message.rcpt_tos == ["bob@remote.test"]
    assert isinstance(context, ssl.SSLContext)


async def test_route_sends_one_domain_to_a_fixed_host(world):
    routed = await world.peer("127.0.0.9", name="internal.test")
    by_mx = await world.peer("127.0.0.10", routed.port)
    world.dns.add("remote.test", "A", "127.0.0.10")
    route = RouteSettings(host="127.0.0.9", port=routed.port)
    await world.enqueue("bob@corp.test", "bob@remote.test")
    async with running(world.manager(port=routed.port, route={"corp.test": route})) as manager:
        await manager.flush()
    assert [m.rcpt_tos for m in routed.received] == [["bob@corp.test"]]
    assert [m.rcpt_tos for m in by_mx.received] == [["bob@remote.test"]]
    assert ("corp.test", "MX") not in world.dns.queries


async def test_one_connection_carries_several_messages(world):
    peer = await world.peer("127.0.0.11")
    world.dns.add("remote.test", "A", "127.0.0.11")
    for index in range(5):
        await world.enqueue(f"user{index}@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    assert len(peer.received) == 5
    assert {m.connection for m in peer.received} == {1}
    assert peer.connections == 1


async def test_max_messages_per_connection_opens_a_new_one(world):
    peer = await world.peer("127.0.0.11")
    world.dns.add("remote.test", "A", "127.0.0.11")
    for index in range(3):
        await world.enqueue(f"user{index}@remote.test")
    settings = {"port": peer.port, "max_messages_per_connection": 2}
    async with running(world.manager(**settings)) as manager:
        await manager.flush()
    assert [m.connection for m in peer.received] == [1, 1, 2]


async def test_concurrency_per_destination_grows_with_the_backlog(world):
    peer = await world.peer("127.0.0.11")
    world.dns.add("remote.test", "A", "127.0.0.11")
    for index in range(24):
        await world.enqueue(f"user{index}@remote.test")
    settings = {"port": peer.port, "max_connections_per_destination": 2}
    async with running(world.manager(**settings)) as manager:
        await manager.flush()
    assert len(peer.received) == 24
    assert peer.most_open == 2  # 24 jobs want 3 connections; the limit is 2


async def test_max_connections_caps_the_connections_of_all_destinations_together(world):
    # Four destinations (domains), one message each, all served by one MX host that takes
    # the message and does not answer its end: each connection stays open until the data
    # timeout gives up on it, so every connection allowed to open overlaps the others.
    peer = await world.peer("127.0.0.11", stall_data=True)
    for number in range(4):
        world.dns.add(f"d{number}.test", "A", "127.0.0.11")
        await world.enqueue(f"user@d{number}.test")
    settings = {"port": peer.port, "max_connections": 2, "data_timeout": 1.0}
    async with running(world.manager(**settings)) as manager:
        await manager.flush()  # two connections, then, as they give up, the other two
        assert (peer.connections, peer.stalled) == (4, 4)  # every destination had its turn
        assert peer.most_open == 2  # four wanted one each at once; the total limit is 2
        peer.stall_data = False
        world.clock.advance(301)
        await manager.flush()
    assert sorted(m.rcpt_tos[0] for m in peer.received) == [f"user@d{n}.test" for n in range(4)]
    assert peer.most_open == 2


async def test_work_that_arrives_later_is_delivered_on_a_new_connection(world):
    peer = await world.peer("127.0.0.11")
    world.dns.add("remote.test", "A", "127.0.0.11")
    await world.enqueue("first@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        await world.enqueue("second@remote.test")
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["first@remote.test"], ["second@remote.test"]]
    assert [m.connection for m in peer.received] == [1, 2]


async def test_without_pipelining_commands_go_one_at_a_time(world):
    peer = await world.peer(
        "127.0.0.11", pipelining=False, refuse={"x@remote.test": "550 5.1.1 no"}
    )
    world.dns.add("remote.test", "A", "127.0.0.11")
    await world.enqueue("x@remote.test", "y@remote.test")
    await world.enqueue("x@remote.test", mail_from="")  # every recipient refused: RSET, go on
    await world.enqueue("z@remote.test")
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
    assert [m.rcpt_tos for m in peer.received] == [["y@remote.test"], ["z@remote.test"]]
    assert peer.connections == 1
