"""Value types of the configuration: durations, sizes, file modes, bind addresses, networks.

Each is an ``Annotated`` type whose metadata tells the converter how to parse the TOML value
and what to say when it cannot. Parsers raise ``ValueError`` with a short detail; the converter
turns that into a ``ConfigIssue`` naming the key, the value found and what was expected.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ValueParser:
    """Converter metadata: parse a raw TOML value, or raise ValueError."""

    parse: Callable[[Any], Any]
    expected: str


@dataclass(frozen=True, slots=True)
class Range:
    """Converter metadata: an inclusive numeric range."""

    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"of at least {self.low:g}"
        return f"of at most {self.high:g}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(raw: Any) -> float:
    """``30`` or ``"30s"``, ``"500ms"``, ``"5m"``, ``"1h"``, ``"2d"``, ``"1w"`` -> seconds."""
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int | float):
        if raw < 0:
            raise ValueError("durations cannot be negative")
        return float(raw)
    if isinstance(raw, str) and (match := _DURATION.match(raw)):
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(raw: Any) -> int:
    """``1048576`` or ``"512K"``, ``"25M"``, ``"25MB"``, ``"1GiB"`` -> bytes (K = 1024)."""
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError("sizes cannot be negative")
        return raw
    if isinstance(raw, str) and (match := _SIZE.match(raw)):
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError


def parse_file_mode(raw: Any) -> int:
    """``"0660"``, ``"660"``, ``"0o660"`` or the TOML octal integer ``0o660``."""
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, str):
        digits = raw.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,4}", digits):
            raise ValueError
        raw = int(digits, 8)
    if isinstance(raw, int) and 0 <= raw <= 0o7777:
        return raw
    raise ValueError


def parse_network(raw: Any) -> IPNetwork:
    """``"10.0.0.0/16"``, ``"2001:db8::/32"`` or a single address (a /32 or /128)."""
    if not isinstance(raw, str):
        raise ValueError
    try:
        return ipaddress.ip_network(raw.strip(), strict=False)
    except ValueError:
        raise ValueError from None


def parse_tls_version(raw: Any) -> str:
    """``"1.2"`` or ``"1.3"`` (``"TLSv1.2"`` is accepted too)."""
    if isinstance(raw, str):
        version = raw.strip().lower().removeprefix("tlsv").removeprefix("tls")
        if version in ("1.2", "1.3"):
            return version
    raise ValueError


_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def parse_hostname(raw: Any) -> str:
    """A DNS name (letters, digits, hyphens, dots); IDNs in their ASCII (xn--) form."""
    if not isinstance(raw, str) or not raw or len(raw) > 253:
        raise ValueError
    name = raw.rstrip(".")
    if not all(_HOSTNAME_LABEL.match(label) for label in name.split(".")):
        raise ValueError
    return name.lower()


@dataclass(frozen=True, slots=True)
class BindAddress:
    """Where a listener listens: an IP address and port, or a Unix-domain socket path."""

    family: socket.AddressFamily
    host: str  # the address in RFC 5952 / dotted form, or the socket path for AF_UNIX
    port: int  # 0 binds an ephemeral port; always 0 for AF_UNIX

    @property
    def is_unix(self) -> bool:
        return self.family == socket.AF_UNIX

    @property
    def sockaddr(self) -> str | tuple[str, int]:
        return self.host if self.is_unix else (self.host, self.port)

    def __str__(self) -> str:
        if self.is_unix:
            return self.host
        if self.family == socket.AF_INET6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_bind_address(raw: Any) -> BindAddress:
    """Momentum's forms: ``*:25`` (every IPv4 address), ``[*]:25`` or ``[::]:25`` (every IPv6
    address), ``127.0.0.1:25``, ``[2001:db8::1]:587`` in any RFC 5952 spelling, and an absolute
    path for a Unix-domain socket."""
    if not isinstance(raw, str):
        raise ValueError
    text = raw.strip()
    if text.startswith("/"):
        return BindAddress(socket.AF_UNIX, str(Path(text)), 0)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("no port: write *:25 for every IPv4 address or [::]:25 for every IPv6")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range 0 to 65535")
    if host == "*":
        return BindAddress(socket.AF_INET, "0.0.0.0", port)
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if inner == "*":
            return BindAddress(socket.AF_INET6, "::", port)
        try:
            return BindAddress(socket.AF_INET6, str(ipaddress.IPv6Address(inner)), port)
        except ValueError:
            raise ValueError(f"{inner!r} is not an IPv6 address") from None
    try:
        return BindAddress(socket.AF_INET, str(ipaddress.IPv4Address(host)), port)
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IPv4 address (IPv6 addresses go in brackets: [::1]:25)"
        ) from None


Duration = Annotated[
    float,
    ValueParser(parse_duration, 'a duration such as "30s", "5m" or "1h", or a number of seconds'),
]
Size = Annotated[int, ValueParser(parse_size, 'a size such as "512K", "25M" or a number of bytes')]
FileMode = Annotated[
    int, ValueParser(parse_file_mode, 'an octal file mode such as "0660" or 0o660')
]
Network = Annotated[
    IPNetwork, ValueParser(parse_network, 'an IP network such as "10.0.0.0/8" or "::1"')
]
Hostname = Annotated[str, ValueParser(parse_hostname, "a host name such as mail.example.com")]
TLSVersion = Annotated[str, ValueParser(parse_tls_version, '"1.2" or "1.3"')]
Bind = Annotated[
    BindAddress,
    ValueParser(
        parse_bind_address,
        'an address such as "*:25", "[::]:25", "127.0.0.1:2525" or an absolute socket path',
    ),
]
Port = Annotated[int, Range(1, 65535)]


# -- outbound queue ([queue]) ---------------------------------------------------------------


def parse_host(raw: Any) -> str:
    """A host to connect to: a DNS name, or an IP address (IPv6 with or without brackets)."""
    if isinstance(raw, str):
        text = raw.strip()
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        try:
            return str(ipaddress.ip_address(inner))
        except ValueError:
            pass
    return parse_hostname(raw)


def parse_nameserver(raw: Any) -> tuple[str, int]:
    """A DNS server: ``"192.0.2.53"``, ``"192.0.2.53:5353"``, ``"::1"`` or ``"[::1]:5353"``
    -> (address, port); the port defaults to 53."""
    if not isinstance(raw, str):
        raise ValueError
    text = raw.strip()
    try:
        return str(ipaddress.ip_address(text)), 53
    except ValueError:
        pass
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(host)), int(port_text)
    except ValueError:
        raise ValueError from None


Host = Annotated[str, ValueParser(parse_host, "a host name or an IP address")]
NameServer = Annotated[
    tuple[str, int],
    ValueParser(parse_nameserver, 'an IP address with an optional port, such as "127.0.0.1:5353"'),
]
