"""The message as Sieve tests see it: header fields, addresses and decoded bodies.

Built on ``stalwart_py.mime``: ``parse_message`` gives the part tree with byte offsets, so
nothing is parsed twice. Header values are unfolded, stripped and, for the ``header`` test,
RFC 2047-decoded (``decode_header_value``; RFC 5228 section 5.7 asks for encoded words to be
decoded before matching). Every occurrence of a field counts, in order (the ``header`` test
matches any of them; ``:count`` counts them).

Bodies (RFC 5173): ``:raw`` is the undecoded text after the top-level header; ``:content``
and ``:text`` are the leaf parts of the requested types with their transfer encoding and
charset decoded; ``:text`` takes the text/* parts and turns text/html into its text. At
most ``max_body`` characters of body text are examined in all, which bounds the cost of a
``body`` test on a huge message.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from functools import cached_property
from html.parser import HTMLParser

from stalwart_py.mime import BodyPart, ParsedMessage, decode_header_value, parse_message
from stalwart_py.mime.charsets import decode_bytes
from stalwart_py.mime.headers import scan_header

_FIELD = re.compile(r"^([^\x00-\x20\x7f:]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)
_FOLD = re.compile(r"\r?\n")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
MAX_HEADER_BYTES = 1 << 20


class MessageView:
    """Lazily parsed views of one message (bytes as delivered)."""

    def __init__(self, data: bytes, *, max_body: int = 1 << 20) -> None:
        self.data = data
        self.size = len(data)
        self.max_body = max_body
        self._decoded: dict[str, list[str]] = {}

    @cached_property
    def parsed(self) -> ParsedMessage:
        return parse_message(self.data)

    @cached_property
    def fields(self) -> list[tuple[str, str]]:
        """(lowercased name, unfolded raw value) of every top-level header field, in order."""
        # Only the header block: scanning for its end is far cheaper than a full MIME parse,
        # which only body tests need.
        length, _ = scan_header(self.data, 0, len(self.data))
        return header_fields(self.data, 0, length)

    def raw_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for field, value in self.fields if field == name]

    def values(self, name: str) -> list[str]:
        """The values of every ``name`` field, encoded words decoded."""
        name = name.lower()
        cached = self._decoded.get(name)
        if cached is None:
            cached = self._decoded[name] = [decode_header_value(v) for v in self.raw_values(name)]
        return cached

    def has(self, name: str) -> bool:
        name = name.lower()
        return any(field == name for field, _ in self.fields)

    def first(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None

    # -- bodies (RFC 5173) -----------------------------------------------------------------

    def raw_body(self) -> str:
        start = self.parsed.body.body_offset
        return self.data[start : start + self.max_body].decode("utf-8", "replace")

    def bodies(self, content_types: tuple[str, ...] | None) -> list[str]:
        """The texts a ``body`` test matches (RFC 5173 section 5.2), None meaning :text.

        For ``:content``, every entity whose type matches one of ``content_types`` ("" every
        type, "text" every text/*, "text/plain" exactly that): a leaf gives its decoded
        content, a multipart its preamble and epilogue (RFC 2046 5.1.1), a message/rfc822 the
        header of the enclosed message; the entities nested in either are examined in turn.
        ``:text`` takes the text/* leaves, text/html turned into its text."""
        out: list[str] = []
        budget = [self.max_body]
        for part in _entities(self.parsed.body):
            if budget[0] <= 0:
                break
            if content_types is None:
                if part.type != "text" or part.parts or part.message is not None:
                    continue
            elif not any(_type_matches(part, wanted) for wanted in content_types):
                continue
            if part.parts:
                texts = _preamble_epilogue(self.data, part)
            elif part.message is not None:
                inner = part.message.body
                header = self.data[inner.header_offset : inner.header_end]
                texts = [header.decode("utf-8", "replace")]
            else:
                text = _decode_part(self.data, part, budget[0])
                if content_types is None and part.subtype == "html":
                    text = html_to_text(text)
                texts = [text]
            for text in texts:
                text = text[: max(budget[0], 0)]
                budget[0] -= len(text)
                out.append(text)
        return out


def header_fields(data: bytes, start: int, length: int) -> list[tuple[str, str]]:
    """(lowercased name, unfolded and stripped value) of each field of a header block."""
    text = data[start : start + min(length, MAX_HEADER_BYTES)].decode("utf-8", "replace")
    return [
        (match.group(1).lower(), _FOLD.sub("", match.group(2)).strip(" \t\r\n"))
        for match in _FIELD.finditer(text)
    ]


def _entities(part: BodyPart) -> Iterator[BodyPart]:
    """Every MIME entity, depth first: a multipart, then its parts; a message/rfc822, then
    the entities of the enclosed message."""
    yield part
    if part.parts:
        for child in part.parts:
            yield from _entities(child)
    elif part.message is not None:
        yield from _entities(part.message.body)


def _type_matches(part: BodyPart, wanted: str) -> bool:
    """RFC 5173 5.2: "" matches every type, "type" every subtype of it, "type/subtype" that
    type; a leading or trailing "/" ("text/", "/plain") is not a type and matches nothing."""
    wanted = wanted.strip().lower()
    if not wanted:
        return True
    kind, slash, subtype = wanted.partition("/")
    if slash and (not kind or not subtype):
        return False
    return part.type == kind and (not slash or part.subtype == subtype)


def _preamble_epilogue(data: bytes, part: BodyPart) -> list[str]:
    """The preamble (before the first delimiter line, without the CRLF that belongs to the
    delimiter) and the epilogue (after the close-delimiter line) of a multipart."""
    boundary = (part.param("boundary") or "").encode("utf-8", "replace")
    body = data[part.body_offset : part.body_end]
    first = part.parts[0].header_offset - part.body_offset
    preamble = body[:first]
    cut = preamble.rfind(b"--" + boundary)
    preamble = preamble[:cut] if cut >= 0 else b""
    if preamble.endswith(b"\n"):
        preamble = preamble[:-2] if preamble.endswith(b"\r\n") else preamble[:-1]
    tail = body[part.parts[-1].body_end - part.body_offset :]
    close = tail.find(b"--" + boundary + b"--")
    epilogue = b""
    if close >= 0:
        line_end = tail.find(b"\n", close)
        epilogue = tail[line_end + 1 :] if line_end >= 0 else b""
    return [text.decode("utf-8", "replace") for text in (preamble, epilogue)]


def _decode_part(data: bytes, part: BodyPart, limit: int) -> str:
    raw = data[part.body_offset : part.body_end]
    if part.encoding == "base64":
        cleaned = _NOT_BASE64.sub(b"", raw[: limit * 2])
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone trailing character carries no whole octet
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            raw = binascii.a2b_base64(cleaned)
        except binascii.Error:
            raw = b""
    elif part.encoding == "quoted-printable":
        raw = binascii.a2b_qp(raw[: limit * 3])
    return decode_bytes(raw[: limit * 4], part.param("charset"))[:limit]


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The text of an HTML part, for ``body :text`` (RFC 5173 section 5.2)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # html.parser is lenient; this is a last resort for odd input
        return html
    return "".join(extractor.parts)
