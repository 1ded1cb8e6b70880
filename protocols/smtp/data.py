"""Message content: DATA (RFC 5321 4.1.1.4, 4.5.2) and BDAT (RFC 3030) readers. Sans-IO.

DATA content ends with ``<CRLF>.<CRLF>``, and only with that: a bare LF or CR never counts as
a line end there (RFC 5321 4.1.1.4: "<LF>.<LF>" MUST NOT be treated as the end), which is
what keeps SMTP smuggling out. The end-of-data search runs over the raw bytes as received,
so a message cannot end early whatever its line ends are. Then:

* Dot-stuffing is undone: a line that starts with ``.`` loses that first ``.`` (RFC 5321
  4.5.2). The reader starts with a virtual CRLF so the first line is treated the same.
* A bare LF or bare CR in the content (RFC 5321 2.3.8) is, per setting, rejected
  (``554 5.6.0``) or made a CRLF, so what is stored and relayed has one kind of line end.
  A bare LF made a CRLF also starts a line whose leading dot is removed.
* A text line longer than ``max_line_length`` octets with its CRLF (RFC 5321 4.5.3.1.6,
  1000) is refused (``554 5.6.0``); 0 turns the check off.
* The size limit (RFC 1870) is enforced while reading: once the content is over it, bytes
  are read and dropped up to the end of data (only the last 4 are kept, to find the end),
  and the reply is ``552 5.3.4``.

BDAT chunks carry exact octet counts and no dot-stuffing (RFC 3030 2); ``ChunkCollector``
keeps them under the same size limit and line-end rules.
"""

from __future__ import annotations

import re

from protocols.smtp.replies import BARE_LINE_END, TOO_BIG, Reply, reply

END_OF_DATA = b"\r\n.\r\n"
_LINE_END = re.compile(rb"\r\n|\r|\n")


def finish_content(
    content: bytes, *, bare_lf: str, bare_cr: str, unstuff: bool, max_line_length: int
) -> bytes | Reply:
    """Apply the line-end rules (and unstuffing, for DATA, whose content starts with the
    reader's virtual CRLF) to complete content; returns the message or the refusal."""
    crlf = content.count(b"\r\n")
    bare_lfs = content.count(b"\n") != crlf
    bare_crs = content.count(b"\r") != crlf
    if bare_lfs or bare_crs:
        if (bare_lfs and bare_lf == "reject") or (bare_crs and bare_cr == "reject"):
            return BARE_LINE_END
        content = _LINE_END.sub(b"\r\n", content)
    if unstuff:
        content = content.replace(b"\r\n.", b"\r\n")[2:]
    if max_line_length and _has_long_line(content, max_line_length):
        return reply(554, "5.6.0", f"Message has a line longer than {max_line_length} octets")
    return content


def _has_long_line(content: bytes, limit: int) -> bool:
    """Whether a line of ``content`` is longer than ``limit`` octets with its line end.

    Such a line holds ``limit - 1`` octets or more between two LFs, so it covers a whole
    aligned block of ``limit // 2`` octets: when every block has an LF (one ``find`` each,
    about 20 for 10 KB of ordinary text), no line is too long. Otherwise the lines are
    measured, which happens for the few messages that come near the limit."""
    if len(content) < limit:
        return False
    step = limit // 2
    find = content.find
    if step:
        for start in range(0, len(content) - step + 1, step):
            if find(b"\n", start, start + step) < 0:
                break
        else:
            return False
    # +1: the split removes the LF and leaves the CR; a line's length counts both.
    return max(map(len, content.split(b"\n"))) + 1 > limit


class DataReader:
    """The content of one DATA command, fed in blocks as they arrive."""

    def __init__(self, max_size: int, *, bare_lf: str, bare_cr: str, max_line_length: int) -> None:
        self.max_size = max_size
        self.bare_lf = bare_lf
        self.bare_cr = bare_cr
        self.max_line_length = max_line_length
        self._raw = bytearray(b"\r\n")  # the virtual CRLF before the first line
        # Stuffing dots in ``_raw[:_counted]``: the size counts the unstuffed content. They
        # are only counted once the raw size is over the limit (below it, so is the
        # unstuffed one), so an ordinary message is not searched for them at every block.
        self._dots = 0
        self._counted = 0
        self.too_big = False
        self.done = False

    def feed(self, data: bytes) -> int:
        """Take received bytes; returns how many belong to the content (all of them, or up
        to and including the end-of-data line). Once ``done``, feed no more."""
        raw = self._raw
        old = len(raw)
        raw += data
        end = raw.find(END_OF_DATA, max(0, old - 4))
        if end >= 0:
            consumed = end + len(END_OF_DATA) - old
            del raw[end + 2 :]  # keep the CRLF that ends the last line
            self.done = True
        else:
            consumed = len(data)
        if not self.too_big and len(raw) - 2 - self._dots > self.max_size:
            self._dots += raw.count(b"\r\n.", max(0, self._counted - 2))
            self._counted = len(raw)
            self.too_big = len(raw) - 2 - self._dots > self.max_size
        if self.too_big:
            del raw[:-4]  # enough to find the end of data across blocks
        return consumed

    def message(self) -> bytes | Reply:
        """The message (unstuffed, line ends checked), or the reply refusing it."""
        if not self.done:
            raise RuntimeError("the end of data has not been seen")
        if self.too_big:
            return TOO_BIG
        return finish_content(
            bytes(self._raw),
            bare_lf=self.bare_lf,
            bare_cr=self.bare_cr,
            unstuff=True,
            max_line_length=self.max_line_length,
        )


class ChunkCollector:
    """The chunks of one BDAT transaction (RFC 3030)."""

    def __init__(self, max_size: int, *, bare_lf: str, bare_cr: str) -> None:
        self.max_size = max_size
        self.bare_lf = bare_lf
        self.bare_cr = bare_cr
        self._content = bytearray()
        self.size = 0
        self.chunks = 0

    @property
    def too_big(self) -> bool:
        return self.size > self.max_size

    def add(self, data: bytes) -> None:
        """Take bytes of a chunk; past the size limit they are counted but not kept."""
        self.size += len(data)
        if self.too_big:
            self._content.clear()
        else:
            self._content += data

    def message(self) -> bytes | Reply:
        if self.too_big:
            return TOO_BIG
        return finish_content(
            bytes(self._content),
            bare_lf=self.bare_lf,
            bare_cr=self.bare_cr,
            unstuff=False,
            max_line_length=0,
        )
