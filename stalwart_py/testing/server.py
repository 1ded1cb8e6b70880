"""A real server for tests, on its own event loop in a thread of the test process.

The test talks to it over sockets, as a client would, and reaches into it (accounts, the
store, delivery) through :meth:`RunningServer.run`, which awaits on the server's own loop.
Readiness is a signal (the server's task status), never a sleep.
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

from stalwart_py.config import BindAddress
from stalwart_py.context import ServerContext
from stalwart_py.delivery import Envelope, Origin, Recipient, RecipientResult
from stalwart_py.listeners import ListenerRegistry, ReloadReport
from stalwart_py.plugin import Protocol
from stalwart_py.server import Server, load
from stalwart_py.store import Account
from stalwart_py.testing.clients import TIMEOUT, LineClient
from stalwart_py.testing.stores import with_store
from stalwart_py.testing.workers import Siblings, requested_workers, with_workers

WAIT = 20.0  # seconds; generous, only ever reached when something is broken


def write_config(directory: Path, text: str, name: str = "config.toml") -> Path:
    """Write a configuration; a ``[storage]`` table with a data dir inside ``directory`` is
    added unless the text has one, ``server.workers`` (1, or pytest's
    ``--server-workers N``) unless the text sets it, and a PostgreSQL database of its own
    when the tests run on PostgreSQL (``stalwart_py/testing/stores.py``) unless the text
    names a store backend."""
    if "[storage]" not in text:
        text = f'[storage]\ndata-dir = "{directory / "var"}"\n\n' + text
    text = with_store(text, directory)
    text = with_workers(text, requested_workers())
    path = directory / name
    path.write_text(text)
    return path


def free_port() -> int:
    """A port free on every address right now (the kernel's pick, released)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


def endpoint(address: BindAddress) -> tuple[str, int] | str:
    """What ``socket.connect`` takes for a bound address: (host, port), or a Unix path."""
    return address.host if address.is_unix else (address.host, address.port)


class RunningServer(AbstractContextManager["RunningServer"]):
    """``Server.run`` on its own event loop in a thread; entering it returns once every
    listener is bound (on port 0, each gets an ephemeral port: see :meth:`address`)."""

    def __init__(
        self,
        config_path: Path,
        protocols: dict[str, type[Protocol]],
        *,
        client_tls: ssl.SSLContext | None = None,
    ) -> None:
        config = load(config_path, protocols, serving=True)
        self.server = Server(config_path, protocols=protocols, config=config)
        # server.workers > 1: worker 0 runs here, its siblings in processes of their own
        self.siblings = (
            Siblings(config_path, config, protocols) if config.server.worker_count > 1 else None
        )
        # What clients made by connect()/smtp()/imap() trust when asked for TLS.
        self.client_tls = client_tls
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal: anyio.from_thread.BlockingPortal | None = None

    def __enter__(self) -> RunningServer:
        if self.siblings is not None:
            self.server.worker = self.siblings.prepare()
            self.server.notify_fd = self.server.worker.channel.fileno()
        self.portal = self._portal_cm.__enter__()
        try:
            self._future, _ = self.portal.start_task(self._run)
            if self.siblings is not None:
                self.siblings.start()
                self.portal.call(self._follow_siblings)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        if self.siblings is None:
            await self.server.run(task_status=task_status)
            return
        async with anyio.create_task_group() as tg:
            self._group = tg  # the siblings' channels are followed here once they are ready
            await self.server.run(task_status=task_status)
            tg.cancel_scope.cancel()

    async def _follow_siblings(self) -> None:
        assert self.siblings is not None
        self._group.start_soon(self.siblings.follow)

    def __exit__(self, *exc_info: object) -> None:
        try:
            future = getattr(self, "_future", None)
            if future is not None and not future.done():
                self.portal.call(self.server.stop)
                future.result(timeout=WAIT)
        finally:
            try:
                self._portal_cm.__exit__(None, None, None)
            finally:
                if self.siblings is not None:
                    self.siblings.close()

    # -- where it listens ---------------------------------------------------------------------

    @property
    def registry(self) -> ListenerRegistry:
        assert self.server.registry is not None
        return self.server.registry

    def addresses(self, listener_id: str) -> list[BindAddress]:
        """Every address a listener is bound to."""
        return self.registry.addresses(listener_id)

    def address(self, listener_id: str, family: int = socket.AF_INET) -> tuple[str, int] | str:
        """The first bound address of ``family`` of a listener, for socket.connect()."""
        for address in self.addresses(listener_id):
            if address.family == family:
                return endpoint(address)
        raise LookupError(f"listener {listener_id} has no address of family {family}")

    def reload(self) -> ReloadReport:
        """Re-read the configuration file, as SIGHUP does."""
        if self.siblings is None:
            return self.portal.call(self.server.reload)
        # As a worker of a supervisor: refused file errors as one process raises them, then
        # the reload of every worker, which worker 0's link asks the kit for.
        load(self.server.config_path, self.server.protocol_classes, serving=True)

        async def every_worker() -> ReloadReport:
            assert self.siblings is not None
            report = await self.context.reload()
            await self.siblings.reloaded()
            return report

        return self.portal.call(every_worker)

    # -- reaching inside ------------------------------------------------------------------------

    @property
    def context(self) -> ServerContext:
        """What sessions reach: store, directory, delivery, metrics..."""
        assert self.server.context is not None
        return self.server.context

    def run(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Await ``func(*args)`` on the server's event loop (the store is used from there)."""
        return self.portal.call(func, *args)

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a plain function on the server's event loop thread."""

        async def run() -> Any:
            return func(*args)

        return self.portal.call(run)

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``condition()`` holds, checked whenever a connection ends."""

        async def wait() -> None:
            with anyio.fail_after(timeout):
                await self.registry.wait_until(condition)

        self.portal.call(wait)

    def add_domain(self, domain: str) -> None:
        """Make ``domain`` local (nothing happens when it is already)."""
        directory = self.context.directory

        async def create() -> None:
            if not await directory.is_local_domain(domain):
                await directory.add_domain(domain)

        self.portal.call(create)

    def add_account(self, address: str, password: str, **options: Any) -> Account:
        """Create an account (and its domain, when it is not local yet). ``options`` are the
        directory's: ``is_admin``, ``quota_bytes``..."""
        self.add_domain(address.rpartition("@")[2])
        return self.run(lambda: self.context.directory.add_account(address, password, **options))

    def deliver(
        self,
        recipients: str | Iterable[str],
        message: bytes,
        *,
        sender: str = "sender@remote.test",
    ) -> list[RecipientResult]:
        """Put ``message`` through the delivery pipeline (Sieve, mailboxes, the queue), as
        SMTP would after DATA; one result per recipient (``.ok``, ``.code``, ``.text``)."""
        addresses = (recipients,) if isinstance(recipients, str) else tuple(recipients)
        envelope = Envelope(sender, tuple(Recipient(address) for address in addresses))
        origin = Origin(protocol="ESMTP", session_id="test-kit", helo="test.kit", source="smtp")
        return self.run(lambda: self.context.delivery.deliver(envelope, message, origin))

    def messages(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """Every message stored in an account's mailbox, oldest first, as stored (with the
        Return-Path and Received fields delivery prepends)."""

        async def read() -> list[bytes]:
            store = self.context.store
            account = await store.get_account(address)
            if account is None:
                raise LookupError(f"no account {address}")
            box = await store.get_mailbox(account.id, mailbox)
            if box is None:
                raise LookupError(f"{address} has no mailbox {mailbox!r}")
            infos = await store.messages(box.id)
            blobs = await store.read_blobs([info.blob_id for info in infos])
            return [blobs[info.blob_id] for info in infos]

        return self.run(read)

    def metric(self, name: str, **labels: str) -> float:
        """The value of a Prometheus sample (0 when it was never set): ``metric(
        "stalwart_connections_accepted_total", listener="echo")``."""
        return self.context.metrics.registry.get_sample_value(name, labels) or 0.0

    # -- clients --------------------------------------------------------------------------------

    def _tls(self, tls: bool | ssl.SSLContext) -> ssl.SSLContext | None:
        if tls is False:
            return None
        if isinstance(tls, ssl.SSLContext):
            return tls
        if self.client_tls is None:
            raise ValueError("no client TLS context: start the server with tls=True")
        return self.client_tls

    def connect(
        self, listener_id: str, *, tls: bool | ssl.SSLContext = False, timeout: float = TIMEOUT
    ) -> LineClient:
        """A line client connected to a listener (``tls``: implicit TLS, trusting the kit's
        test CA unless a context is given)."""
        context = self._tls(tls)
        hostname = "localhost" if context is not None else None
        return LineClient(
            self.address(listener_id), tls=context, server_hostname=hostname, timeout=timeout
        )

    def smtp(self, listener_id: str, *, tls: bool | ssl.SSLContext = False) -> smtplib.SMTP:
        """smtplib connected to an smtp listener (``tls``: implicit TLS, as on 465)."""
        host, port = self.address(listener_id)
        context = self._tls(tls)
        if context is not None:
            return smtplib.SMTP_SSL(host, port, context=context, timeout=TIMEOUT)
        return smtplib.SMTP(host, port, timeout=TIMEOUT)

    def imap(
        self,
        listener_id: str,
        login: tuple[str, str] | None = None,
        *,
        tls: bool | ssl.SSLContext = False,
    ) -> imaplib.IMAP4:
        """imaplib connected to an imap listener, logged in when ``login`` is given (plain
        LOGIN needs TLS or ``imap.auth.allow-plaintext``)."""
        host, port = self.address(listener_id)
        context = self._tls(tls)
        client = (
            imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=TIMEOUT)
            if context is not None
            else imaplib.IMAP4(host, port, timeout=TIMEOUT)
        )
        if login is not None:
            client.login(*login)
        return client
