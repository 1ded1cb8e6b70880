"""``ServerContext``: what every protocol session can reach of the running server."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from stalwart_py.certificates import CertificateStore
from stalwart_py.config import Config
from stalwart_py.delivery import Delivery
from stalwart_py.directory import Directory
from stalwart_py.filters.runner import Filters
from stalwart_py.inbound.state import Inbound
from stalwart_py.junk.filter import JunkFilter
from stalwart_py.metrics import Metrics
from stalwart_py.resolver import Resolver
from stalwart_py.shared_limits import SharedLimits
from stalwart_py.sieve.deferred import DeferredSieveFilter
from stalwart_py.store import Store
from stalwart_py.tls import TLSManager

if TYPE_CHECKING:
    from stalwart_py.acme import AcmeManager
    from stalwart_py.listeners import ListenerRegistry, ReloadReport
    from stalwart_py.queue import QueueManager


class ServerContext:
    """Shared by every connection: configuration, the store, the directory, the delivery
    pipeline, TLS, metrics, logging and the listener registry.

    The configuration can change on reload; ``config`` is always the one in force, and a
    session that started before a reload keeps the listener settings it was given.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        metrics: Metrics | None = None,
        limits: SharedLimits | None = None,
    ) -> None:
        """``limits``: the tables of counts a supervisor's workers share; a server of one
        process makes its own (the same code, shared with nobody)."""
        self.config = config
        self.metrics = metrics or Metrics()
        self.store = store
        # Per-client counts over every worker: connections, failed logins, SMTP rates.
        self.limits = limits or SharedLimits.create(config)
        # The one DNS resolver (``[resolver]``): the queue, SPF, DKIM, DMARC, DNSBLs.
        self.resolver = Resolver.from_settings(config.resolver, self.metrics)
        self.directory = Directory(
            store, config.directory, failures=self.limits.login_failures, metrics=self.metrics
        )
        # The junk filter that learns: scores at delivery, trains from IMAP (its worker runs in
        # the server's task group).
        self.junk = JunkFilter(
            store, lambda: self.config.spam.classifier, lambda: self.config.hostname
        )
        self.delivery = Delivery(
            store,
            self.directory,
            lambda: self.config.hostname,
            metrics=self.metrics,
            message_filter=DeferredSieveFilter(  # built on the first delivery
                store,
                self.directory,
                lambda: self.config.hostname,
                metrics=self.metrics,
                vacation_periods=lambda: (
                    self.config.sieve.vacation.min_period,
                    self.config.sieve.vacation.max_period,
                ),
            ),
            memory_queue=lambda: self.queue,
            junk=self.junk,
        )
        # Certificates chosen by SNI ([certificate.*], ACME's installs), TLS-ALPN-01 answers.
        self.certificates = CertificateStore(config.storage.data_dir, self.metrics)
        self.certificates.store = store  # installed ones: the same for every node
        self.tls = TLSManager(config.storage.data_dir, self.certificates)
        # checks of mail from strangers: shared state (rate limits)
        self.inbound = Inbound(self.limits.connection_rates, self.limits.message_rates, store)
        # [filter."<id>"]: milters and other filters a listener runs after DATA (filters/)
        self.filters = Filters(lambda: self.config.filters, self.metrics)
        self.logger = logging.getLogger("stalwart_py")
        self.draining = anyio.Event()  # set when the server starts to stop
        self.listeners: ListenerRegistry | None = None
        self.queue: QueueManager | None = None  # the outbound queue's workers (set by the server)
        self.acme: AcmeManager | None = None  # ACME renewals, [acme."<id>"] (set by the server)
        # Re-read and apply the configuration file (set by the server); raises ConfigError
        # or ApplyError and changes nothing when the file cannot be applied.
        self.reload: Callable[[], Awaitable[ReloadReport]] | None = None

    @property
    def hostname(self) -> str:
        return self.config.hostname
