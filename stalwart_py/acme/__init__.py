"""ACME (RFC 8555): certificates obtained and renewed from a CA such as Let's Encrypt.

``jws.py`` signs requests (josepy), ``client.py`` speaks the protocol (httpx), ``orders.py``
runs one issuance, ``challenges.py`` publishes HTTP-01 and TLS-ALPN-01 answers,
``schedule.py`` decides when to renew and retry, and ``manager.py`` is the renewal task in
the server's task group. Configuration: ``[acme."<id>"]`` (``stalwart_py/config/acme.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stalwart_py.acme.manager import AcmeManager, AcmeState

if TYPE_CHECKING:
    from stalwart_py.acme.client import AcmeClient, AcmeError, AcmeProblem

__all__ = ["AcmeClient", "AcmeError", "AcmeManager", "AcmeProblem", "AcmeState"]


def __getattr__(name: str) -> Any:
    # The client (httpx, josepy) loads on first use: a server without an order never needs it.
    if name in ("AcmeClient", "AcmeError", "AcmeProblem"):
        from stalwart_py.acme import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
