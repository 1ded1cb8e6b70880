"""``ServerContext``: what every protocol session can reach of the running server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from stalwart_py.config import Config
from stalwart_py.metrics import Metrics
from stalwart_py.tls import TLSManager

if TYPE_CHECKING:
    from stalwart_py.listeners import ListenerRegistry


class ServerContext:
    """Shared by every connection: configuration, TLS, metrics, logging and the registry.

    The configuration can change on reload; ``config`` is always the one in force, and a
    session that started before a reload keeps the listener settings it was given.
    """

    def __init__(self, config: Config, *, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.tls = TLSManager(config.storage.data_dir)
        self.logger = logging.getLogger("stalwart_py")
        self.draining = anyio.Event()  # set when the server starts to stop
        self.listeners: ListenerRegistry | None = None

    @property
    def hostname(self) -> str:
        return self.config.hostname
