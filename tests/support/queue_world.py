"""A queue under test: a store with a local domain, a DNS zone, receiving peers, a fake clock."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import trustme

from stalwart_py.config import DirectorySettings, ThrottleSettings
from stalwart_py.config.schema import QueueDnsSettings, QueueSettings, QueueTLSSettings
from stalwart_py.delivery import Delivery, Envelope, Origin, Recipient
from stalwart_py.directory import Directory
from stalwart_py.queue import QueueManager
from stalwart_py.store import OutboundMessage, QueuedRecipient
from stalwart_py.store.sqlite import SqliteStore
from tests.support.mail_peers import Peer, ZoneServer, background_loop

HOSTNAME = "mail.example.test"
SENDER = "alice@example.test"
MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hello\r\n"
    b"Message-ID: <1@example.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n"
    b"Hello Bob.\r\n.leading dot\r\n"
)


class FakeClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class World:
    tmp: Path
    store: SqliteStore
    directory: Directory
    delivery: Delivery
    dns: ZoneServer
    ca: trustme.CA
    ca_file: Path
    clock: FakeClock = field(default_factory=FakeClock)
    peers: list[Peer] = field(default_factory=list)

    def settings(self, **overrides: Any) -> QueueSettings:
        base = QueueSettings(
            retry=(300.0, 600.0),
            connect_timeout=5.0,
            command_timeout=10.0,
            data_timeout=10.0,
            dns=QueueDnsSettings(nameservers=(("127.0.0.1", self.dns.port),), timeout=3.0),
            tls=QueueTLSSettings(ca_file=self.ca_file),
        )
        tls_require = overrides.pop("tls_require", None)
        if tls_require is not None:
            overrides["tls"] = dataclasses.replace(base.tls, require=tuple(tls_require))
        return dataclasses.replace(base, **overrides)

    def manager(self, **overrides: Any) -> QueueManager:
        return QueueManager(
            self.settings(**overrides),
            self.store,
            self.delivery,
            hostname=lambda: HOSTNAME,
            data_dir=self.tmp,
            dkim=overrides.pop("dkim", None),
            clock=self.clock,
        )

    async def peer(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Peer:
        peer = Peer(**options)
        await peer.start(host, port)
        self.peers.append(peer)
        return peer

    def server_tls(self, *names: str):
        """A server context with a certificate for ``names`` from the test CA."""
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names).configure_cert(context)
        return context

    async def enqueue(
        self,
        *recipients: str,
        mail_from: str = SENDER,
        data: bytes = MESSAGE,
        notify: tuple[str, ...] = (),
        orcpt: str | None = None,
        **options: Any,
    ) -> int:
        return await self.store.enqueue(
            data,
            OutboundMessage(
                mail_from, tuple(QueuedRecipient(r, orcpt, notify) for r in recipients), **options
            ),
        )

    async def submit(self, *recipients: str, data: bytes = MESSAGE) -> None:
        """Through the delivery pipeline, as a submission would."""
        envelope = Envelope(SENDER, tuple(Recipient(r) for r in recipients))
        results = await self.delivery.deliver(envelope, data, Origin("ESMTPSA", "test"))
        assert all(r.ok for r in results), results

    async def inbox(self, address: str) -> list[bytes]:
        account = await self.store.get_account(address)
        box = await self.store.get_mailbox(account.id, "INBOX")
        infos = await self.store.messages(box.id)
        blobs = await self.store.read_blobs([info.blob_id for info in infos])
        return [blobs[info.blob_id] for info in infos]


@asynccontextmanager
async def make_world(tmp: Path, ca: trustme.CA) -> AsyncIterator[World]:
    store = SqliteStore(tmp)
    await store.open()
    directory = Directory(store, DirectorySettings(throttle=ThrottleSettings(failure_delay=0)))
    await directory.add_domain("example.test")
    await directory.add_account(SENDER, "password123")
    delivery = Delivery(store, directory, lambda: HOSTNAME)
    dns = ZoneServer()
    await dns.start()
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    world = World(tmp, store, directory, delivery, dns, ca, ca_file)
    try:
        yield world
    finally:
        for peer in world.peers:
            await peer.stop()
        dns.close()
        await store.close()


@asynccontextmanager
async def running(manager: QueueManager) -> AsyncIterator[QueueManager]:
    async with anyio.create_task_group() as group:
        await group.start(manager.run)
        try:
            yield manager
        finally:
            group.cancel_scope.cancel()


@contextmanager
def outside_world(
    mx_address: str, domain: str = "remote.test", **peer_options: Any
) -> Iterator[tuple[anyio.from_thread.BlockingPortal, ZoneServer, Peer]]:
    """For a server running in a thread of its own: a DNS zone (``domain`` MX -> ``mx.<domain>``
    A -> ``mx_address``) and a receiving Peer there (``Peer`` options), served from a loop
    of their own."""
    with background_loop() as portal:
        zone = ZoneServer({domain: [("MX", f"10 mx.{domain}.")]})
        zone.add(f"mx.{domain}", "A", mx_address)
        portal.call(zone.start)
        peer = Peer(name=f"mx.{domain}", **peer_options)
        portal.call(peer.start, mx_address)
        try:
            yield portal, zone, peer
        finally:
            peer.stall_data = False
            portal.call(peer.stop)
            portal.call(zone.close)
