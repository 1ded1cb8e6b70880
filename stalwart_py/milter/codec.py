"""The Sendmail milter protocol, version 6, as an MTA speaks it: a sans-IO codec (h11 style).

A milter conversation is a sequence of packets over one stream, each::

    uint32 length (network order, counting the command byte) | char command | data

The MTA (us) sends *commands*, the filter answers with *replies*. Strings are NUL-terminated.
One message's conversation, as Postfix drives it:

1. ``SMFIC_OPTNEG`` ``O``: version, the actions the MTA allows (``SMFIF_*``) and the protocol
   steps it can leave out or not wait for (``SMFIP_*``); the filter answers ``O`` with the
   subsets it wants, and may append ``SMFIM_*`` stage + macro-name lists (SETSYMLIST).
2. Per stage, ``SMFIC_MACRO`` ``D`` (the stage's command letter + name/value pairs, never
   answered), then the stage's command: ``C`` connect (host name, family, port, address),
   ``H`` HELO, ``M`` MAIL FROM (address then ESMTP arguments), ``R`` RCPT TO, ``T`` DATA,
   ``L`` one header (name, value), ``N`` end of headers, ``B`` body chunks of at most 64 KB,
   ``E`` end of message.
3. Each command is answered (unless the filter negotiated ``SMFIP_NR_*`` for it) with one of
   ``c`` continue, ``a`` accept (no more of this message), ``r`` reject, ``t`` tempfail,
   ``d`` discard, ``y`` a full SMTP reply (``550 5.7.1 text``), ``s`` skip (the rest of the
   body), ``p`` progress (wait on). After ``E`` the filter first sends its modifications
   (``h`` add header, ``i`` insert header, ``m`` change header, ``b`` replace body chunk,
   ``+``/``2`` add recipient, ``-`` delete recipient, ``e`` change sender, ``q``
   quarantine), then the final reply.
4. ``Q`` quit closes the conversation; ``A`` abort ends one message but keeps the stream.

This module only turns commands into bytes and bytes into replies; ``client.py`` does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

VERSION = 6
MAX_PACKET = 16 * 1024 * 1024  # a reply larger than this is a broken filter, not a message
CHUNK_SIZE = 65535  # MILTER_CHUNK_SIZE: the largest body chunk libmilter accepts


class Action(IntFlag):
    """``SMFIF_*``: what a filter may change, offered by the MTA in OPTNEG."""

    ADDHDRS = 0x01
    CHGBODY = 0x02
    ADDRCPT = 0x04
    DELRCPT = 0x08
    CHGHDRS = 0x10
    QUARANTINE = 0x20
    CHGFROM = 0x40
    ADDRCPT_PAR = 0x80
    SETSYMLIST = 0x100


class Step(IntFlag):
    """``SMFIP_*``: protocol steps a filter may ask to be left out (NO*) or not answered
    (NR_*), offered by the MTA in OPTNEG."""

    NOCONNECT = 0x01
    NOHELO = 0x02
    NOMAIL = 0x04
    NORCPT = 0x08
    NOBODY = 0x10
    NOHDRS = 0x20
    NOEOH = 0x40
    NR_HDR = 0x80
    NOUNKNOWN = 0x100
    NODATA = 0x200
    SKIP = 0x400
    RCPT_REJ = 0x800
    NR_CONN = 0x1000
    NR_HELO = 0x2000
    NR_MAIL = 0x4000
    NR_RCPT = 0x8000
    NR_DATA = 0x10000
    NR_UNKN = 0x20000
    NR_EOH = 0x40000
    NR_BODY = 0x80000
    HDR_LEADSPC = 0x100000


# What this client implements: every action, and every step a filter may skip or not answer
# (not RCPT_REJ: we never pass a rejected recipient on).
OFFERED_ACTIONS = Action(0x1FF)
OFFERED_STEPS = Step(0x1FFFFF) & ~Step.RCPT_REJ

# The commands (MTA -> filter).
OPTNEG, MACRO, CONNECT, HELO, MAIL, RCPT, DATA = b"O", b"D", b"C", b"H", b"M", b"R", b"T"
HEADER, EOH, BODY, EOM, ABORT, QUIT = b"L", b"N", b"B", b"E", b"A", b"Q"

# The stages of SETSYMLIST (SMFIM_*) and the command letter each one's macros go with.
MACRO_STAGES = {0: CONNECT, 1: HELO, 2: MAIL, 3: RCPT, 4: DATA, 5: EOM, 6: EOH}

# The final replies (filter -> MTA), and the modifications that come before one after EOM.
ACCEPT, CONTINUE, DISCARD, REJECT, TEMPFAIL = b"a", b"c", b"d", b"r", b"t"
REPLYCODE, SKIP, PROGRESS, CONNFAIL = b"y", b"s", b"p", b"f"
ADDHEADER, INSHEADER, CHGHEADER, REPLBODY = b"h", b"i", b"m", b"b"
ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM, QUARANTINE = b"+", b"2", b"-", b"e", b"q"
SETSYMLIST = b"l"  # unused as a reply code: the symbol list rides in the OPTNEG answer


class MilterProtocolError(Exception):
    """The filter sent something the protocol does not allow (its fault)."""


# -- commands ------------------------------------------------------------------------------


def packet(command: bytes, data: bytes = b"") -> bytes:
    """One packet: length (command byte + data), command, data."""
    return struct.pack("!I", len(data) + 1) + command + data


def _cstrings(*values: str | bytes) -> bytes:
    out = bytearray()
    for value in values:
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        if b"\0" in raw:  # a NUL would end the string early and shift every field after it
            raw = raw.replace(b"\0", b"")
        out += raw + b"\0"
    return bytes(out)


def optneg(
    actions: Action = OFFERED_ACTIONS, steps: Step = OFFERED_STEPS, version: int = VERSION
) -> bytes:
    return packet(OPTNEG, struct.pack("!III", version, int(actions), int(steps)))


def macros(stage: bytes, values: dict[str, str]) -> bytes:
    """``D``: macros for the next command ``stage``; ``{name}`` braces as Sendmail writes
    long names (``{client_addr}``), one-letter names bare (``j``, ``i``)."""
    pairs: list[str] = []
    for name, value in values.items():
        pairs += [name if len(name) == 1 or name.startswith("{") else "{" + name + "}", value]
    return packet(MACRO, stage + _cstrings(*pairs))


def connect(hostname: str, family: str, port: int, address: str) -> bytes:
    """``C``: family ``4``, ``6``, ``L`` (a Unix socket: address is the path, port 0) or
    ``U`` (unknown: nothing after the family)."""
    data = _cstrings(hostname) + family.encode("ascii")
    if family != "U":
        data += struct.pack("!H", port) + _cstrings(address)
    return packet(CONNECT, data)


def helo(name: str) -> bytes:
    return packet(HELO, _cstrings(name))


def mail(sender: str, args: tuple[str, ...] = ()) -> bytes:
    """``M``: ``<sender>`` then its ESMTP arguments, each a string."""
    return packet(MAIL, _cstrings(f"<{sender}>", *args))


def rcpt(recipient: str, args: tuple[str, ...] = ()) -> bytes:
    return packet(RCPT, _cstrings(f"<{recipient}>", *args))


def data() -> bytes:
    return packet(DATA)


def header(name: str | bytes, value: str | bytes) -> bytes:
    return packet(HEADER, _cstrings(name, value))


def end_of_headers() -> bytes:
    return packet(EOH)


def body_chunks(body: bytes) -> list[bytes]:
    """``B`` packets of at most CHUNK_SIZE octets each (none for an empty body)."""
    return [packet(BODY, body[i : i + CHUNK_SIZE]) for i in range(0, len(body), CHUNK_SIZE)]


def end_of_message() -> bytes:
    return packet(EOM)


def quit_() -> bytes:
    return packet(QUIT)


def abort() -> bytes:
    return packet(ABORT)


# -- replies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The filter's answer to OPTNEG: what it will do, what it wants left out, and the macros
    it asked for per stage (SETSYMLIST; empty: send what we have)."""

    version: int
    actions: Action
    steps: Step
    macros: dict[bytes, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply packet: its code (``c``, ``r``, ``h``, ...) and fields decoded per code.

    ``text`` is the SMTP reply of ``y`` or the reason of ``q``; ``name``/``value``/``index``
    the header of ``h``/``i``/``m``; ``address``/``args`` the envelope of ``+``/``2``/``-``/
    ``e``; ``body`` the chunk of ``b``.
    """

    code: bytes
    text: str = ""
    name: str = ""
    value: str = ""
    index: int = 0
    address: str = ""
    args: str = ""
    body: bytes = b""

    @property
    def final(self) -> bool:
        """A disposition that ends the wait for a command's answer."""
        return self.code in (ACCEPT, CONTINUE, DISCARD, REJECT, TEMPFAIL, REPLYCODE, SKIP)


def _split(data: bytes, count: int, code: bytes) -> list[str]:
    parts = data.split(b"\0")
    if len(parts) < count + 1:
        raise MilterProtocolError(f"reply {code!r}: expected {count} NUL-terminated strings")
    return [p.decode("utf-8", "surrogateescape") for p in parts[:count]]


def _unbracket(address: str) -> str:
    address = address.strip()
    return address[1:-1] if address.startswith("<") and address.endswith(">") else address


def decode_reply(code: bytes, data: bytes) -> Reply:
    """Decode the data of one reply packet by its code."""
    if code in (ACCEPT, CONTINUE, DISCARD, REJECT, TEMPFAIL, SKIP, PROGRESS, CONNFAIL):
        return Reply(code)
    if code in (REPLYCODE, QUARANTINE):
        return Reply(code, text=_split(data, 1, code)[0])
    if code == ADDHEADER:
        name, value = _split(data, 2, code)
        return Reply(code, name=name, value=value)
    if code in (INSHEADER, CHGHEADER):
        if len(data) < 4:
            raise MilterProtocolError(f"reply {code!r}: too short")
        name, value = _split(data[4:], 2, code)
        return Reply(code, index=struct.unpack("!I", data[:4])[0], name=name, value=value)
    if code == REPLBODY:
        return Reply(code, body=data)
    if code in (ADDRCPT, DELRCPT):
        return Reply(code, address=_unbracket(_split(data, 1, code)[0]))
    if code in (ADDRCPT_PAR, CHGFROM):
        parts = data.split(b"\0")
        if len(parts) < 2:
            raise MilterProtocolError(f"reply {code!r}: expected an address")
        address = parts[0].decode("utf-8", "surrogateescape")
        args = parts[1].decode("utf-8", "surrogateescape") if len(parts) > 2 else ""
        return Reply(code, address=_unbracket(address), args=args)
    raise MilterProtocolError(f"unknown reply code {code!r}")


def decode_optneg(data: bytes) -> Negotiated:
    """The filter's OPTNEG answer: three uint32, then optional SETSYMLIST entries (a uint32
    stage and a NUL-terminated, space-separated macro list each)."""
    if len(data) < 12:
        raise MilterProtocolError("OPTNEG reply too short")
    version, actions, steps = struct.unpack("!III", data[:12])
    if version < 2:
        raise MilterProtocolError(f"milter protocol version {version} is not supported")
    wanted: dict[bytes, tuple[str, ...]] = {}
    rest = data[12:]
    while len(rest) >= 4:
        stage = struct.unpack("!I", rest[:4])[0]
        names, _, rest = rest[4:].partition(b"\0")
        if stage in MACRO_STAGES:
            wanted[MACRO_STAGES[stage]] = tuple(names.decode("ascii", "replace").split())
    return Negotiated(version, Action(actions) & OFFERED_ACTIONS, Step(steps), wanted)


class ReplyReader:
    """Reassembles reply packets from the bytes of the stream (any split)."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buffer = bytearray()
        self._max = max_packet

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_packet(self) -> tuple[bytes, bytes] | None:
        """(code, data) of the next complete packet, or None until more bytes come."""
        if len(self._buffer) < 4:
            return None
        length = struct.unpack("!I", self._buffer[:4])[0]
        if length < 1 or length > self._max:
            raise MilterProtocolError(f"reply packet of {length} octets")
        if len(self._buffer) < 4 + length:
            return None
        code = bytes(self._buffer[4:5])
        payload = bytes(self._buffer[5 : 4 + length])
        del self._buffer[: 4 + length]
        return code, payload
