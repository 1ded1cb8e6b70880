"""What mail clients and other servers are told about this server: its client endpoints and
its MTA-STS policy, computed from the configuration in force and the sockets really bound.

Everything that describes the server to the outside (Thunderbird autoconfig, Outlook
Autodiscover, Apple profiles in protocols/http/autoconfig.py; the SRV and MTA-STS records of
``stalwart-py dns records``) reads it from here, so no description can disagree with another
or with the listeners.

An endpoint's security is what its listener does: ``tls`` for an implicit-TLS listener
(``tls.implicit = true``), ``starttls`` for every other TCP listener of IMAP, SMTP and
ManageSieve (each offers STARTTLS to a client not yet under TLS, with the configured or the
self-signed certificate). No listener of ours is plaintext-only, so none is ever advertised
as such. Unix-domain sockets, disabled listeners, MX listeners (``smtp`` listeners without
``smtp.auth.require``, except on the submission ports 465 and 587) and LMTP are not client
endpoints.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from stalwart_py.config.types import BindAddress

if TYPE_CHECKING:
    from stalwart_py.config import Config, ListenerConfig
    from stalwart_py.listeners import ListenerRegistry

Service = Literal["imap", "submission", "managesieve", "pop3"]
Security = Literal["tls", "starttls"]
SUBMISSION_PORTS = (465, 587)  # RFC 8314 (implicit TLS) and RFC 6409 (STARTTLS)
SERVICES: dict[str, Service] = {"imap": "imap", "managesieve": "managesieve", "pop3": "pop3"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One way for a mail client to reach a service: host, port and how TLS starts."""

    service: Service
    host: str
    port: int
    security: Security
    listener: str


def _service(listener: ListenerConfig, ports: list[int]) -> Service | None:
    if listener.protocol == "smtp":
        auth = getattr(listener.settings.protocol, "auth", None)
        required = bool(getattr(auth, "require", False))
        if required or any(port in SUBMISSION_PORTS for port in ports):
            return "submission"
        return None
    return SERVICES.get(listener.protocol)


def endpoints(config: Config, registry: ListenerRegistry | None = None) -> list[Endpoint]:
    """The client endpoints, best first within each service: implicit TLS before STARTTLS
    (RFC 8314 3: implicit TLS is preferred), then the lower port. With a running registry the
    real bound ports are given (a listener configured on port 0 has one), else the configured
    ones."""
    found: dict[tuple[str, int, str], Endpoint] = {}
    for lid, listener in config.listeners.items():
        if not listener.enable:
            continue
        addresses: list[BindAddress] = list(listener.bind)
        if registry is not None:
            runtime = registry.listeners.get(lid)
            if runtime is None or runtime.suspended:
                continue
            addresses = registry.addresses(lid)
        ports = [a.port for a in addresses if not a.is_unix and a.port]
        service = _service(listener, ports)
        if service is None:
            continue
        settings = listener.settings
        security: Security = "tls" if settings.tls.implicit else "starttls"
        for port in ports:
            key = (service, port, security)
            found.setdefault(key, Endpoint(service, settings.hostname, port, security, lid))
    return sorted(found.values(), key=lambda e: (e.service, e.security != "tls", e.port))


def best(found: list[Endpoint], service: Service) -> Endpoint | None:
    """The preferred endpoint of ``service`` (implicit TLS first), or None."""
    return next((e for e in found if e.service == service), None)


# -- MTA-STS (RFC 8461) ---------------------------------------------------------------------


def mta_sts_policy(config: Config) -> str:
    """The policy file (RFC 8461 3.2): ``key: value`` lines ending in CRLF; ``mx`` once per
    name; the same for every hosted domain (they share the MX)."""
    settings = config.mta_sts
    lines = ["version: STSv1", f"mode: {settings.mode}"]
    lines += [f"mx: {name}" for name in settings.mx or (config.hostname,)]
    lines.append(f"max_age: {int(settings.max_age)}")
    return "".join(line + "\r\n" for line in lines)


def mta_sts_id(config: Config) -> str:
    """The ``id`` of the ``_mta-sts`` TXT record (RFC 8461 3.1: 1 to 32 letters and digits):
    a digest of the policy text, so that it changes whenever the policy does and senders
    fetch the new one."""
    return hashlib.sha256(mta_sts_policy(config).encode()).hexdigest()[:20]
