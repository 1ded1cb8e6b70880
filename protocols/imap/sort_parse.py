"""The grammar of SORT and THREAD (RFC 5256 section 4), of the RETURN options of ESORT and
CONTEXT (RFC 5267 section 4.1) and of PARTIAL ranges (RFC 9394 section 3).

    sort            = ["UID" SP] "SORT" [SP "RETURN" SP "(" [return-opt *(SP return-opt)] ")"]
                      SP "(" ["REVERSE" SP] sort-key *(SP ["REVERSE" SP] sort-key) ")"
                      SP charset 1*(SP search-key)
    sort-key        = ARRIVAL / CC / DATE / FROM / SIZE / SUBJECT / TO
                      / DISPLAYFROM / DISPLAYTO                           ; RFC 5957
    thread          = ["UID" SP] "THREAD" SP algorithm SP charset 1*(SP search-key)
    return-opt      = MIN / MAX / COUNT / ALL / SAVE / CONTEXT / UPDATE / PARTIAL SP range
    range           = nz-number ":" nz-number / "-" nz-number ":" "-" nz-number

An unknown charset parses (its search strings are read as they are) and is refused by the
command with ``NO [BADCHARSET]``, as RFC 5256 section 3 asks. The parsers take the reader
just after the command name.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.imap.lexer import ParseError, Reader
from protocols.imap.search_keys import SearchKey, SearchParser

SORT_KEYS = frozenset(
    ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")
)
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
RETURN_OPTIONS = frozenset(("MIN", "MAX", "COUNT", "ALL", "SAVE", "CONTEXT", "UPDATE", "PARTIAL"))
MAX_PARTIAL = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Returns:
    """RETURN options: the names given, and the PARTIAL range (first, last), 1-based and
    ascending; negative for ``-a:-b`` (counted from the end, RFC 9394 section 3)."""

    options: frozenset[str]
    partial: tuple[int, int] | None = None
    given: tuple[str, ...] = ()  # the options in the order written


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str  # one of SORT_KEYS
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    criteria: tuple[SortCriterion, ...]
    charset: str
    search: SearchKey
    returns: Returns | None = None  # None: a plain SORT (``* SORT`` reply)


@dataclass(frozen=True, slots=True)
class Thread:
    algorithm: str
    charset: str
    search: SearchKey


def parse_partial(reader: Reader) -> tuple[int, int]:
    """``1:100`` or ``-1:-100``, either way round, as (first, last) with first <= last in
    magnitude."""
    negative = reader.skip(b"-")
    first = reader.nz_number(MAX_PARTIAL)
    reader.expect(b":")
    if negative:
        reader.expect(b"-", "a negative range end")
    elif reader.peek() == b"-":
        raise ParseError("a PARTIAL range is both positive or both negative")
    last = reader.nz_number(MAX_PARTIAL)
    low, high = min(first, last), max(first, last)
    return (-low, -high) if negative else (low, high)


def parse_returns(reader: Reader) -> Returns:
    """``RETURN (...)`` (the reader is at RETURN)."""
    reader.pos += len(b"RETURN")
    reader.space()
    partial: tuple[int, int] | None = None

    def option(reader: Reader) -> str:
        nonlocal partial
        name = reader.keyword()
        if name not in RETURN_OPTIONS:
            raise ParseError(f"unknown return option {name}")
        if name == "PARTIAL":
            reader.space()
            partial = parse_partial(reader)
        return name

    given = tuple(reader.parenthesized(option))
    names = frozenset(given)
    if "PARTIAL" in names and "ALL" in names:  # RFC 9394 section 3.1
        raise ParseError("PARTIAL and ALL cannot be used together")
    return Returns(names, partial, given)


def _charset_and_search(reader: Reader) -> tuple[str, SearchKey]:
    charset = reader.astring().decode("ascii", "replace").upper()
    reader.space()
    return charset, SearchParser(reader).keys()


def parse_sort(reader: Reader, uid: bool) -> Sort:
    reader.space()
    returns = None
    if reader.peek_upper(b"RETURN"):
        returns = parse_returns(reader)
        reader.space()

    def criterion(reader: Reader) -> SortCriterion:
        name = reader.keyword()
        reverse = name == "REVERSE"
        if reverse:
            reader.space()
            name = reader.keyword()
        if name not in SORT_KEYS:
            raise ParseError(f"unknown sort key {name}")
        return SortCriterion(name, reverse)

    criteria = tuple(reader.parenthesized(criterion, allow_empty=False))
    reader.space()
    charset, search = _charset_and_search(reader)
    return Sort(criteria, charset, search, returns)


def parse_thread(reader: Reader, uid: bool) -> Thread:
    reader.space()
    algorithm = reader.keyword()
    if algorithm not in THREAD_ALGORITHMS:
        raise ParseError(f"unknown threading algorithm {algorithm}")
    reader.space()
    charset, search = _charset_and_search(reader)
    return Thread(algorithm, charset, search)
