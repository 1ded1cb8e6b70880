"""COMPRESS=DEFLATE (RFC 4978): the client asks, the server says OK, and from the byte after
that OK (and the client's next byte) both directions are raw DEFLATE streams until the
connection ends. The stream itself is the connection's (``Connection.start_compression``,
``stalwart_py.compression``), so it works the same over TLS and behind a PROXY header.

Replies: ``OK`` then compression; a second ``COMPRESS`` is ``NO [COMPRESSIONACTIVE]``
(RFC 4978 section 3); a mechanism other than DEFLATE is ``BAD`` (it is the only one defined).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.imap import response
from protocols.imap.arguments import Command
from protocols.imap.lexer import Reader
from protocols.imap.replies import ANSWERED, Bad, No, Ok

if TYPE_CHECKING:
    from protocols.imap.session import Session

MECHANISMS = ("DEFLATE",)


def parse_compress(reader: Reader, uid: bool) -> str:
    """``COMPRESS SP algorithm`` (RFC 4978 section 4): the mechanism, upper-cased."""
    reader.space()
    return reader.keyword()


async def compress(session: Session, command: Command) -> Ok:
    mechanism: str = command.args
    if mechanism not in MECHANISMS:
        raise Bad(f"Unknown compression mechanism {mechanism}")
    if session.conn.compressed:
        raise No("Compression is already active", "COMPRESSIONACTIVE")
    # Everything written so far, this OK included, goes out uncompressed; what follows it
    # (and everything the client sends after reading it) is compressed.
    session.write(response.status(command.tag, "OK", "DEFLATE active"))
    await session.flush()
    session.conn.start_compression()
    session.conn.log.debug("compression started")
    return ANSWERED
