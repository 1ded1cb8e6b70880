"""The settings the core understands: listener defaults, the server, storage and logging.

The field names and defaults here are the documentation of the configuration file: a key is
the field name with ``_`` written as ``-``. Protocol settings (``smtp.*``, ``imap.*``, ...) are
declared by each protocol plugin in the same way and merged under the same rule.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from stalwart_py.config.blob import BlobSettings
from stalwart_py.config.outbound_tls import QueueDaneSettings, QueueMtaStsSettings
from stalwart_py.config.types import (
    Duration,
    FileMode,
    Host,
    Hostname,
    NameServer,
    Network,
    Port,
    Range,
    Size,
    TLSVersion,
)

MAX_WORKERS = 64  # server.workers: more processes than this is a mistake, not a machine
# Keys that shape the listening socket itself, so a peer scope cannot change them.
LISTENING_SOCKET_KEYS = frozenset({"reuse-addr", "reuse-port", "backlog", "file-mode"})


def system_hostname() -> str:
    return socket.gethostname().lower() or "localhost"


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """``socket.*``: options set on the listening socket and on every accepted connection."""

    reuse_addr: bool = True  # SO_REUSEADDR
    reuse_port: bool = False  # SO_REUSEPORT
    backlog: Annotated[int, Range(1, 65535)] = 1024  # the listen() backlog
    nodelay: bool = True  # TCP_NODELAY on each connection
    ttl: Annotated[int, Range(1, 255)] | None = None  # IP_TTL (IPv6: IPV6_UNICAST_HOPS)
    send_buffer_size: Size | None = None  # SO_SNDBUF
    recv_buffer_size: Size | None = None  # SO_RCVBUF
    linger: Duration | None = None  # SO_LINGER: seconds to wait for unsent data on close
    tos: Annotated[int, Range(0, 255)] | None = None  # IP_TOS (IPv6: IPV6_TCLASS)
    file_mode: FileMode | None = None  # Unix-domain sockets only


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """``tls.*``: implicit TLS and the certificate; absent certificate means self-signed."""

    implicit: bool = False  # TLS from the first byte (465, 993)
    # PEM files; absent: a self-signed certificate for the hostname, kept in <data-dir>/tls
    certificate: Path | None = None
    private_key: Path | None = None  # its private key (PEM); the two go together
    min_version: TLSVersion = "1.2"  # the oldest TLS version accepted
    handshake_timeout: Duration = 10.0  # the longest a TLS handshake may take

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private-key must be given together")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """``proxy.*``: PROXY protocol v1/v2 headers are read only from these networks."""

    # PROXY headers are required from these networks; the address they carry is the client's
    trusted_networks: tuple[Network, ...] = ()
    timeout: Duration = 10.0  # how long to wait for that header


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """What a connection's session runs under: [server] defaults, the listener, peer scopes."""

    # The name the listener gives itself (in greetings, EHLO, certificates).
    hostname: Hostname = field(default_factory=system_hostname)
    # On a listener: its limit; in a peer scope: of every connection the scope matches.
    max_connections: Annotated[int, Range(1)] | None = None
    # Connections one client address may hold open on the listener at once, so that one
    # address cannot take every connection; IPv6 clients count by their /64 (one host, or
    # one home, usually has a whole /64). Behind a proxy, the address its PROXY header gives.
    max_connections_per_ip: Annotated[int, Range(1)] | None = 50
    ipv6_prefix_length: Annotated[int, Range(1, 128)] = 64  # IPv6 clients count by this prefix
    idle_timeout: Duration = 300.0  # waiting for the client's next command
    # A command, once its first byte arrived, must arrive whole within this (its literals or
    # data may take longer: see min-data-rate); a client trickling a byte at a time cannot
    # keep a connection by sending just before each idle timeout.
    command_timeout: Duration = 60.0
    # Bulk data (an IMAP literal, SMTP DATA or BDAT, a Sieve script) must arrive at least
    # this fast on average, in bytes per second, on top of the command timeout.
    min_data_rate: Annotated[Size, Range(1)] = 500
    socket: SocketSettings = field(default_factory=SocketSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    allow: bool = True  # peer scopes only: false refuses the peer
    # The protocol's own settings object (its ``<protocol>.*`` table); not a TOML key here.
    protocol: Any = field(default=None, metadata={"toml": False})


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Keys of ``[server]`` that are about the whole server, not defaults for listeners."""

    max_connections: Annotated[int, Range(1)] | None = None  # over all listeners together
    shutdown_timeout: Duration = 10.0  # grace for open sessions on SIGTERM
    # Worker processes accepting on the listening sockets (stalwart_py/supervisor.py); 1 is
    # one process doing everything. Unset: one per CPU this process may run on (its CPU
    # affinity, so a container's cpuset counts), at most 64. Read at start: a change needs a
    # restart.
    workers: Annotated[int, Range(1, MAX_WORKERS)] | None = None
    # How often to look at the certificate files for a renewal (an ACME client replacing
    # them) and reload when one changed; unset: never (reload by hand or SIGHUP).
    certificate_watch: Duration | None = None

    @property
    def worker_count(self) -> int:
        """``workers``, or when unset the CPUs this process may use (``usable_cpus``)."""
        return self.workers if self.workers is not None else min(usable_cpus(), MAX_WORKERS)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (``taskset``, a container's
    cpuset), which ``os.cpu_count()`` ignores; the count of the machine where there is none."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """``[storage]``: where the server keeps its data."""

    data_dir: Path = Path("/var/lib/stalwart-py")  # messages, accounts, keys: mode 0700
    # "sqlite": one file under data-dir, for one machine; "postgresql": a database shared by
    # any number of nodes (url, password-file, pool-size, statement-timeout below)
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    # postgresql only: a libpq connection URI such as "postgresql://mail@db.example/mail"
    # (host, port, user, database, options such as sslmode=verify-full)
    url: str | None = None
    # postgresql only: a file holding the password (its first line), kept out of the config
    password_file: Path | None = None
    # postgresql only: connections for reads at once (one more is the writer's)
    pool_size: Annotated[int, Range(1, 256)] = 8
    # postgresql only: a statement running longer is cancelled (PostgreSQL statement_timeout)
    statement_timeout: Duration = 30.0
    blob: BlobSettings = field(default_factory=BlobSettings)

    def __post_init__(self) -> None:
        if self.backend == "postgresql":
            if self.url is None:
                raise ValueError('backend "postgresql" needs url = "postgresql://..."')
            if not self.url.startswith(("postgresql://", "postgres://")):
                raise ValueError("url must be a URI starting with postgresql://")
        elif self.url is not None or self.password_file is not None:
            raise ValueError('url and password-file are for backend = "postgresql"')


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """``[logging]``; the command line's --log-level and --log-format win over these."""

    level: Literal["debug", "info", "warning", "error"] = "info"  # the least severe logged
    format: Literal["text", "json"] = "text"  # one line per event, as text or as JSON


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """``[directory.throttle]``: how failed logins slow down the client that makes them.

    Failures are counted in a sliding ``window`` per client address (an IPv6 client by its /64)
    and per (client address, account). Past its limit, an address or a pair is blocked for
    ``block-time`` after its latest failure, doubling with each further failure up to
    ``max-block-time``; attempts while blocked are refused unchecked and not counted. An
    account is never blocked for everyone: from an address without failures, the right
    password always works. See ``stalwart_py.directory.LoginThrottle``.
    """

    window: Duration = 3600.0  # failures older than this are forgotten
    # Failures from one address, any accounts (at most 64: a key's record keeps 64 failures).
    max_failures_per_address: Annotated[int, Range(1, 64)] = 30
    # Failures from one address for one account (at most 64, as above).
    max_failures_per_address_and_account: Annotated[int, Range(1, 64)] = 5
    block_time: Duration = 1.0  # the first block; 0 turns blocking off
    max_block_time: Duration = 900.0  # the longest block
    failure_delay: Duration = 1.0  # every failed attempt is answered only after this
    # Addresses and pairs remembered, by every worker together; read at start.
    max_tracked: Annotated[int, Range(1000)] = 100_000

    # Keys that were; a file that still has one is refused with this message.
    renamed_keys: ClassVar[dict[str, str]] = {
        "max-failures-per-account": (
            "renamed to max-failures-per-address-and-account: failures now count per account "
            "from each client address, so that no address can lock an account for everyone"
        )
    }


@dataclass(frozen=True, slots=True)
class AuthCacheSettings:
    """``[directory.auth-cache]``: successful logins remembered, like Dovecot's auth_cache.

    A verified (account, password) pair is kept as a keyed hash (never the password) for
    ``ttl``, and honoured only while the account's stored password hash is the one it was
    verified against; see ``stalwart_py.auth_cache``. ``ttl = "0"`` turns the cache off.
    """

    ttl: Duration = 300.0  # how long a verified password is remembered (never extended by use)
    max_entries: Annotated[int, Range(1)] = 10_000  # past it the oldest go first


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    """``[directory]``."""

    subaddress_separator: str = "+"  # "" turns plus-addressing off
    scram: bool = True  # keep SCRAM-SHA-256 credentials (offer the mechanism)
    min_password_length: int = 8  # characters of an account's password, after SASLprep
    # Password hashes (scrypt) computed at once, in worker threads; unset: the number of CPUs.
    # More logins wait their turn in order, each at most max-hash-wait, and are then deferred
    # ("try again later"), not refused. See stalwart_py.hash_pool.
    max_concurrent_hashes: Annotated[int, Range(1, 1024)] | None = None
    max_hash_wait: Duration = 10.0  # the wait for a free worker before a login is deferred
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    auth_cache: AuthCacheSettings = field(default_factory=AuthCacheSettings)

    def __post_init__(self) -> None:
        if len(self.subaddress_separator) > 1:
            raise ValueError("subaddress-separator must be one character or empty")


# -- outbound queue ([queue]) and DKIM signing ([dkim."<domain>"]) ---------------------------

# How a route uses TLS: never; STARTTLS when offered, unverified (RFC 7435 opportunistic
# security); STARTTLS required with a verified certificate; TLS from the first byte, verified.
RouteTLS = Literal["none", "opportunistic", "starttls", "implicit"]


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """``[queue.route."<domain>"]``: deliver this domain to a fixed host instead of its MX."""

    host: Host  # a host name or an IP address
    port: Port = 25  # the port of that host
    # "none"; "opportunistic": STARTTLS when offered, unverified; "starttls": required and
    # verified; "implicit": TLS from the first byte, verified.
    tls: RouteTLS = "opportunistic"
    user: str | None = None  # AUTH (PLAIN, else LOGIN) with these credentials
    password: str | None = None  # with user, and sent only over verified TLS

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password must be given together")
        if self.user is not None and self.tls not in ("starttls", "implicit"):
            raise ValueError(
                'a password is only sent over verified TLS: set tls to "starttls" or "implicit"'
            )


@dataclass(frozen=True, slots=True)
class RelaySettings(RouteSettings):
    """``[queue.relay]``: send every remote message through this smarthost."""

    port: Port = 587  # the smarthost's port (submission, RFC 6409)
    tls: RouteTLS = "starttls"


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """``[resolver]``: the one DNS resolver, for the queue's MX lookups, SPF, DKIM, DMARC,
    iprev and DNSBLs alike; see ``stalwart_py.resolver``."""

    nameservers: tuple[NameServer, ...] = ()  # empty: the system's (/etc/resolv.conf)
    timeout: Duration = 5.0  # one try at one server
    attempts: Annotated[int, Range(1, 10)] = 2  # tries in all before a temporary failure
    cache_size: Annotated[int, Range(0)] = 10_000  # entries (answers and negative answers)
    max_ttl: Duration = 86400.0  # an answer is cached for its TTL, at most this
    max_negative_ttl: Duration = 3600.0  # NXDOMAIN/NODATA: the SOA's negative TTL, at most this


@dataclass(frozen=True, slots=True)
class QueueDnsSettings:
    """``[queue.dns]``: deprecated alias of ``[resolver]``'s keys of the same names (read as
    them, with a warning naming the new key)."""

    nameservers: tuple[NameServer, ...] = ()  # empty: the system's (/etc/resolv.conf)
    timeout: Duration = 5.0  # read as resolver.timeout: one try at one server


@dataclass(frozen=True, slots=True)
class QueueTLSSettings:
    """``[queue.tls]``: TLS of outbound connections."""

    require: tuple[Hostname, ...] = ()  # domains delivered only over verified TLS
    ca_file: Path | None = None  # trust anchors for verification; default: the system's


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """``[queue]``: delivery of the outbound queue."""

    # Intervals between delivery attempts (the last one repeats until max-age).
    retry: tuple[Duration, ...] = (300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
    max_age: Duration = 5 * 86400.0  # then undelivered recipients bounce
    max_connections: Annotated[int, Range(1, 10000)] = 32  # outbound, in total
    max_connections_per_destination: Annotated[int, Range(1, 1000)] = 4  # to one destination
    max_messages_per_connection: Annotated[int, Range(1)] = 100  # then a new connection
    port: Port = 25  # the port of MX hosts (RFC 5321); change it only to test
    connect_timeout: Duration = 30.0  # to connect to one host
    command_timeout: Duration = 300.0  # RFC 5321 4.5.3.2: 5 minutes for most replies
    data_timeout: Duration = 600.0  # RFC 5321 4.5.3.2: 10 minutes for the end of DATA
    poll_interval: Duration = 5.0  # how often the queue is re-read for work added elsewhere
    # how long a node's claim on a recipient it delivers lasts unrenewed: a node that dies
    # mid-delivery leaves its recipients to the others after this (docs/postgresql.md)
    lease_time: Duration = 300.0
    # Keep every message queued without trying to deliver it (maintenance, a blocked port
    # 25): mail is still accepted and queued; `hold = false` and a reload send it on.
    hold: bool = False
    dns: QueueDnsSettings = field(default_factory=QueueDnsSettings)
    tls: QueueTLSSettings = field(default_factory=QueueTLSSettings)
    relay: RelaySettings | None = None
    route: dict[Hostname, RouteSettings] = field(default_factory=dict)
    # MTA-STS (RFC 8461) and DANE (RFC 7672) of destinations: config/outbound_tls.py
    mta_sts: QueueMtaStsSettings = field(default_factory=QueueMtaStsSettings)
    dane: QueueDaneSettings = field(default_factory=QueueDaneSettings)

    def __post_init__(self) -> None:
        if not self.retry:
            raise ValueError("retry needs at least one interval")
        if self.lease_time < 3 * self.poll_interval:  # renewed by the scans, a third in
            raise ValueError(
                f"lease-time ({self.lease_time:g}s) must be at least three times poll-interval"
                f" ({self.poll_interval:g}s): the leases are renewed by the queue's scans"
            )


@dataclass(frozen=True, slots=True)
class DkimSettings:
    """``[dkim."<domain>"]``: sign outbound mail from this domain (RFC 6376)."""

    selector: str  # the DKIM selector: its key is published at <selector>._domainkey.<domain>
    private_key: Path  # PEM, RSA or Ed25519; `stalwart-py dkim generate` makes one


SERVER_ONLY_KEYS = frozenset(
    {"max-connections", "shutdown-timeout", "certificate-watch", "workers"}
)
LISTENER_ONLY_KEYS = ("bind", "protocol", "enable")
SCOPE_ONLY_KEYS = frozenset({"allow"})


# -- Sieve ([sieve]) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SieveVacationSettings:
    """``[sieve.vacation]``: the bounds of a vacation reply's period (``:days``, ``:seconds``),
    as Pigeonhole's sieve_vacation_min_period and sieve_vacation_max_period. A script asking
    for less or more gets the bound. RFC 5230 4.1: a site maximum SHOULD NOT be under 30 days."""

    min_period: Duration = 86400.0  # Pigeonhole's default: one day
    max_period: Duration = 90 * 86400.0  # RFC 5230 4.1: not under 30 days

    def __post_init__(self) -> None:
        if self.min_period > self.max_period:
            raise ValueError("min-period must not be over max-period")


@dataclass(frozen=True, slots=True)
class SieveSettings:
    """``[sieve]``: the Sieve filter run at delivery."""

    vacation: SieveVacationSettings = field(default_factory=SieveVacationSettings)
