"""FETCH data items (RFC 9051 section 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ) as values.

``fetch-att``: ENVELOPE, FLAGS, INTERNALDATE, RFC822.SIZE, RFC822 / RFC822.HEADER /
RFC822.TEXT (IMAP4rev1), BODY, BODYSTRUCTURE, UID, MODSEQ, ``BODY[section]<partial>`` and
``BODY.PEEK[...]``, ``BINARY[part]<partial>``, ``BINARY.PEEK[...]``, ``BINARY.SIZE[part]``;
and the macros ALL, FAST and FULL.

A section is ``part`` (``1.2.3``, possibly empty) then optionally ``HEADER``,
``HEADER.FIELDS (names)``, ``HEADER.FIELDS.NOT (names)``, ``TEXT`` or (after a part number
only) ``MIME``. A partial ``<start.count>`` asks for ``count`` octets from ``start``; the
response names only ``<start>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.imap.lexer import MAX_NUMBER, ParseError, Reader

SIMPLE_ITEMS = frozenset(
    (
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
    )
)
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
MAX_SECTION_PARTS = 64
MAX_HEADER_NAMES = 256


@dataclass(frozen=True, slots=True)
class Section:
    part: tuple[int, ...] = ()
    text: str | None = None  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()  # the names of HEADER.FIELDS (.NOT), as the client wrote them

    def spec(self) -> str:
        """The section as it is echoed in the response: ``1.2.HEADER.FIELDS (From To)``."""
        pieces = [".".join(map(str, self.part))] if self.part else []
        if self.text is not None:
            pieces.append(self.text)
        text = ".".join(pieces)
        if self.text is not None and self.text.startswith("HEADER.FIELDS"):
            text += " (" + " ".join(_astring_text(name) for name in self.fields) + ")"
        return text


@dataclass(frozen=True, slots=True)
class BodySection:
    """``BODY[...]``, ``BINARY[...]`` or ``BINARY.SIZE[...]``, with PEEK and partial."""

    kind: str  # "BODY", "BINARY" or "BINARY.SIZE"
    section: Section
    peek: bool = False
    partial: tuple[int, int] | None = None  # (start, count)
    alias: str | None = None  # the IMAP4rev1 name it was asked as: RFC822, RFC822.HEADER...

    @property
    def sets_seen(self) -> bool:
        """Whether fetching it sets \\Seen (RFC 9051 section 6.4.5: all but PEEK)."""
        return not self.peek and self.kind != "BINARY.SIZE"

    def response_name(self) -> str:
        if self.alias is not None:
            return self.alias
        name = f"{self.kind}[{self.section.spec()}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}>"
        return name


FetchItem = str | BodySection  # a simple item's name, or a section


@dataclass(frozen=True, slots=True)
class FetchModifiers:
    changed_since: int | None = None  # RFC 7162 CHANGEDSINCE
    vanished: bool = False  # RFC 7162 VANISHED (UID FETCH only)
    partial: tuple[int, int] | None = None  # RFC 9394 PARTIAL a:b or -a:-b


def parse_fetch_items(reader: Reader) -> tuple[FetchItem, ...]:
    """``"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")"``."""
    if reader.peek() == b"(":
        items = reader.parenthesized(_fetch_att, allow_empty=False)
    else:
        for macro, expansion in MACROS.items():
            if reader.peek_upper(macro.encode()):
                reader.pos += len(macro)
                return expansion
        items = [_fetch_att(reader)]
    # Each item once, in the order asked.
    return tuple(dict.fromkeys(items))


def _fetch_att(reader: Reader) -> FetchItem:
    start = reader.pos
    name = _item_name(reader)
    if name in SIMPLE_ITEMS and reader.peek() != b"[":
        return name
    if name == "RFC822":
        return BodySection("BODY", Section(), alias="RFC822")
    if name == "RFC822.HEADER":
        return BodySection("BODY", Section(text="HEADER"), peek=True, alias="RFC822.HEADER")
    if name == "RFC822.TEXT":
        return BodySection("BODY", Section(text="TEXT"), alias="RFC822.TEXT")
    kinds = {
        "BODY": ("BODY", False),
        "BODY.PEEK": ("BODY", True),
        "BINARY": ("BINARY", False),
        "BINARY.PEEK": ("BINARY", True),
        "BINARY.SIZE": ("BINARY.SIZE", True),
    }
    if name not in kinds or reader.peek() != b"[":
        reader.pos = start
        raise ParseError(f"unknown fetch item {name}")
    kind, peek = kinds[name]
    reader.expect(b"[")
    section = _binary_section(reader) if kind != "BODY" else _section(reader)
    reader.expect(b"]")
    partial = None
    if kind != "BINARY.SIZE" and reader.skip(b"<"):
        first = reader.number()
        reader.expect(b".")
        count = reader.nz_number()
        reader.expect(b">")
        partial = (first, count)
    return BodySection(kind, section, peek=peek, partial=partial)


def _item_name(reader: Reader) -> str:
    """The item name: letters, digits and dots up to ``[``, a space or ``)``."""
    data, pos = reader.data, reader.pos
    stop = pos
    while stop < reader.end and (data[stop : stop + 1].isalnum() or data[stop] == 0x2E):
        stop += 1
    if stop == pos:
        raise ParseError("expected a fetch item")
    reader.pos = stop
    return data[pos:stop].decode("ascii").upper()


def _part_numbers(reader: Reader) -> list[int]:
    numbers: list[int] = []
    while reader.peek().isdigit():
        numbers.append(reader.nz_number(MAX_NUMBER))
        if len(numbers) > MAX_SECTION_PARTS:
            raise ParseError("section part number too deep")
        if not reader.skip(b"."):
            break
        if not reader.peek().isdigit():
            reader.pos -= 1  # the dot belongs to the section text that follows
            break
    return numbers


def _section(reader: Reader) -> Section:
    numbers = _part_numbers(reader)
    if numbers and not reader.skip(b"."):
        return Section(tuple(numbers))
    if reader.peek() == b"]":
        return Section(tuple(numbers))
    text = _item_name(reader)
    if text in ("HEADER", "TEXT") or (text == "MIME" and numbers):
        return Section(tuple(numbers), text)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        reader.space()
        names = reader.parenthesized(_header_name, allow_empty=False)
        if len(names) > MAX_HEADER_NAMES:
            raise ParseError("too many header field names")
        return Section(tuple(numbers), text, tuple(names))
    raise ParseError(f"invalid section {text}")


def _binary_section(reader: Reader) -> Section:
    """``section-binary = "[" [section-part] "]"``: part numbers only."""
    numbers = _part_numbers(reader)
    return Section(tuple(numbers))


def _header_name(reader: Reader) -> str:
    raw = reader.astring()
    if not raw or any(byte <= 0x20 or byte >= 0x7F or byte == 0x3A for byte in raw):
        raise ParseError("invalid header field name")
    return raw.decode("ascii")


def parse_fetch_modifiers(reader: Reader) -> FetchModifiers:
    """``(CHANGEDSINCE n [VANISHED])`` after the items (RFC 7162 section 3.1.4 and 3.2.6)."""
    changed_since: int | None = None
    vanished = False
    partial: tuple[int, int] | None = None

    def modifier(reader: Reader) -> None:
        nonlocal changed_since, vanished, partial
        name = reader.keyword()
        if name == "CHANGEDSINCE":
            reader.space()
            changed_since = reader.number(0x7FFFFFFFFFFFFFFF)
        elif name == "VANISHED":
            vanished = True
        elif name == "PARTIAL":  # RFC 9394 section 4
            from protocols.imap.sort_parse import parse_partial

            reader.space()
            partial = parse_partial(reader)
        else:
            raise ParseError(f"unknown FETCH modifier {name}")

    reader.parenthesized(modifier, allow_empty=False)
    if vanished and changed_since is None:
        raise ParseError("VANISHED needs CHANGEDSINCE")
    return FetchModifiers(changed_since, vanished, partial)


def _astring_text(name: str) -> str:
    """A header field name as an atom when it is one, else quoted."""
    if name and all(char.isalnum() or char in "-_.!#$&'+^`|~" for char in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
