"""PROXY protocol headers, versions 1 and 2 (HAProxy's proxy-protocol.txt). Parsing only, no I/O.

A load balancer that terminates the client's TCP connection sends, before anything else, a
header carrying the client's real address. Version 1 is one text line::

    PROXY TCP4 203.0.113.7 192.0.2.1 56324 25\\r\\n        (at most 107 bytes)
    PROXY UNKNOWN\\r\\n                                      (address not known: keep the real one)

Version 2 is binary: a 12-byte signature, a version/command byte (0x20 LOCAL, 0x21 PROXY), an
address family/transport byte, a 16-bit length and then the addresses (and optional TLVs, which
are skipped). A LOCAL command (a health check from the proxy itself) carries no client address.

The reader first looks at one byte: ``P`` starts a version 1 line, ``\\r`` a version 2 header.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from stalwart_py.config.types import IPAddress

V1_MAX_LENGTH = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER_LENGTH = 16  # signature, version/command, family, length
V2_MAX_BODY = 536  # two Unix paths of 108 bytes and room for TLVs; more is refused

# family byte -> (bytes of one address, bytes of the whole address block): TCP over IPv4, IPv6
_V2_FAMILIES = {0x11: (4, 12), 0x21: (16, 36)}


class ProxyProtocolError(ValueError):
    """A malformed or unsupported PROXY header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """The client endpoint a proxy reports; ``source`` is None when it reports none."""

    source: tuple[IPAddress, int] | None
    destination: tuple[IPAddress, int] | None


def version_of(first_byte: bytes) -> int:
    """1 or 2, from the first byte of the stream."""
    if first_byte == b"P":
        return 1
    if first_byte == b"\r":
        return 2
    raise ProxyProtocolError("expected a PROXY protocol header")


def parse_v1(line: bytes) -> ProxyHeader:
    """Parse a complete version 1 line, including its CRLF."""
    if len(line) > V1_MAX_LENGTH or not line.endswith(b"\r\n"):
        raise ProxyProtocolError("PROXY v1 line too long or not ended by CRLF")
    try:
        parts = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyProtocolError("PROXY v1 line is not ASCII") from None
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyProtocolError("PROXY v1 line does not start with PROXY")
    if parts[1] == "UNKNOWN":
        return ProxyHeader(None, None)
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyProtocolError(f"unsupported PROXY v1 line: {' '.join(parts[:2])}")
    version = 4 if parts[1] == "TCP4" else 6
    source = _v1_endpoint(parts[2], parts[4], version)
    destination = _v1_endpoint(parts[3], parts[5], version)
    return ProxyHeader(source, destination)


def _v1_endpoint(host: str, port: str, version: int) -> tuple[IPAddress, int]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 address {host!r} is not an IP address") from None
    if ip.version != version:
        raise ProxyProtocolError(f"PROXY v1 address {host} is not IPv{version}")
    if not port.isdigit() or (port != "0" and port.startswith("0")) or int(port) > 65535:
        raise ProxyProtocolError(f"PROXY v1 port {port!r} is invalid")
    return ip, int(port)


def v2_body_length(header: bytes) -> int:
    """From the first 16 bytes of a version 2 header, how many bytes follow."""
    if len(header) != V2_HEADER_LENGTH or not header.startswith(V2_SIGNATURE):
        raise ProxyProtocolError("bad PROXY v2 signature")
    if header[12] >> 4 != 2:
        raise ProxyProtocolError(f"unsupported PROXY v2 version {header[12] >> 4}")
    if header[12] & 0x0F not in (0, 1):
        raise ProxyProtocolError(f"unsupported PROXY v2 command {header[12] & 0x0F}")
    (length,) = struct.unpack("!H", header[14:16])
    if length > V2_MAX_BODY:
        raise ProxyProtocolError(f"PROXY v2 header of {length} bytes is too long")
    return length


def parse_v2(header: bytes, body: bytes) -> ProxyHeader:
    """Parse a version 2 header: its first 16 bytes and the ``v2_body_length`` bytes after."""
    v2_body_length(header)
    if header[12] & 0x0F == 0:  # LOCAL: the proxy speaking for itself
        return ProxyHeader(None, None)
    family = header[13]
    if family not in _V2_FAMILIES:
        return ProxyHeader(None, None)  # UNSPEC, Unix or datagram: no usable client address
    size, needed = _V2_FAMILIES[family]
    if len(body) < needed:
        raise ProxyProtocolError("PROXY v2 address block is too short")
    source_ip = ipaddress.ip_address(body[:size])
    destination_ip = ipaddress.ip_address(body[size : 2 * size])
    source_port, destination_port = struct.unpack("!HH", body[2 * size : 2 * size + 4])
    return ProxyHeader((source_ip, source_port), (destination_ip, destination_port))


def build_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A version 1 header, for tests and for clients of a proxied server."""
    version = ipaddress.ip_address(source[0]).version
    return (
        f"PROXY TCP{version} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    ).encode()


def build_v2(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """A version 2 header (LOCAL when ``source`` is None), for tests and clients."""
    if source is None or destination is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body
