"""The ``http.*`` table: limits, timeouts and who may use the admin API over plain HTTP.

Merged like every protocol table: ``[server.http]``, then the listener, then peer scopes, so
``[server.listener.http.peer."10.0.0.0/8"] http.public-metrics = true`` opens ``/metrics`` to a
scraper on that network only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from stalwart_py.config import Duration, Network, Size

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True, slots=True)
class WebSettings:
    """``http.web.*``: the web pages for the administrator (``/admin/``) and for every user
    (``/account/``), signed in with a session cookie (``protocols/http/web``, docs/web.md).
    They are refused over plain HTTP outside ``http.allow-plaintext-from``, as the API is."""

    # Serve the web pages on this listener (or for this peer scope); false: 404 for them all.
    enable: bool = True
    # A session not used for this long ends (the next page asks to sign in again).
    session_idle_timeout: Duration = 1800.0
    # A session ends this long after its sign-in, however much it is used.
    session_lifetime: Duration = 43200.0


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """``http.*``. The listener's ``idle-timeout`` is how long a kept-alive connection may
    wait for its next request."""

    # The largest request body (an injected message included); over it: 413.
    max_body_size: Size = 25 * 1024 * 1024
    # The request line and header fields together; over it: 431.
    max_header_size: Size = 16 * 1024
    # From the first byte of a request to the last byte of its body; over it: 408.
    request_timeout: Duration = 60.0
    # Clients that may send credentials over plain HTTP (without TLS); others get 403 on
    # every authenticated route. A Unix-domain socket counts as local.
    allow_plaintext_from: tuple[Network, ...] = LOOPBACK
    # /metrics without authentication (for a Prometheus scraper); otherwise admins only.
    public_metrics: bool = False
    # The realm named in WWW-Authenticate (RFC 7617).
    realm: str = "stalwart-py"
    web: WebSettings = field(default_factory=WebSettings)
