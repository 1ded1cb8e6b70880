"""The plugin test kit: real servers on ephemeral ports for a plugin's tests (and ours).

Installed with stalwart-py as a pytest plugin (entry point ``pytest11``); it only adds
fixtures, so nothing happens until a test asks for one:

``stalwart_servers``
    a :class:`ServerFactory`: ``stalwart_servers.start(toml, tls=False)`` starts a server on a TOML
    snippet (bind to port 0) with every installed protocol and returns a
    :class:`RunningServer` once its listeners are bound; stopped when the test ends.
``stalwart_server``
    a server started (with TLS) from the ``stalwart_config`` fixture, which a test module
    overrides with its TOML.
``stalwart_protocols``
    the protocols a started server can serve (every installed one); override it to serve a
    class that is not installed.
``stalwart_ca``, ``stalwart_certificate``, ``stalwart_client_tls``
    a test CA (trustme), a certificate for localhost signed by it, a client context that
    trusts it.

A :class:`RunningServer` gives ``address(listener)``, ``add_domain``, ``add_account``,
``deliver(recipients, message)`` (through the delivery pipeline), clients already connected
(``connect`` a line client, ``smtp``, ``imap``), ``reload()``, ``context`` (store,
directory, metrics) and ``run(coroutine_function, ...)`` to await on the server's loop.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported when first used: the pytest plugin (stalwart_py.testing.fixtures) is loaded by
# every pytest run where stalwart-py is installed, and must not load the server with it.
_EXPORTS = {
    "LineClient": "clients",
    "connect": "clients",
    "ServerFactory": "factory",
    "with_certificate": "factory",
    "RunningServer": "server",
    "endpoint": "server",
    "free_port": "server",
    "write_config": "server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"stalwart_py.testing.{_EXPORTS[name]}"), name)
