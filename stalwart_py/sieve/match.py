"""Comparators (RFC 4790, RFC 5228 section 2.7.3), match types (section 2.7.1) and the
relational match types (RFC 5231).

Comparators:

``i;octet``
    Strings compared as octets (code point order is UTF-8 octet order).
``i;ascii-casemap`` (the default)
    ``a``-``z`` and ``A``-``Z`` compare equal; every other character as itself.
``i;ascii-numeric``
    The value is the number its leading digits spell; a string without a leading digit is
    positive infinity, equal to every other such string. Only equality and ordering.

Match types: ``:is`` (equality), ``:contains`` (substring), ``:matches`` (``*`` any run of
characters, ``?`` any one character, ``\\`` quotes the next), and ``:value "op"`` (ordering,
RFC 5231). ``:count`` is handled by the tests, which count their values and compare the
count with ``i;ascii-numeric``-style ordering through this module.

``:matches`` records what each wildcard matched, for the match variables ``${1}``...
(RFC 5229 section 3.2): wildcards match as few characters as possible, left to right. The
pattern is split at its ``*``; each piece has a fixed length, so the first piece anchors at
the start, the last at the end, and each middle piece is placed at its leftmost occurrence,
which is both correct and the shortest expansion of every ``*``. The cost is at most the
value's length times the pattern's, whatever the input: no backtracking.
"""

from __future__ import annotations

from collections.abc import Sequence

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
ANY = object()  # "?" in a compiled pattern
Piece = tuple[object, ...]  # characters (str of length 1) and ANY


class MatchError(Exception):
    """A match the comparator cannot do (substring matching with i;ascii-numeric)."""


def fold(text: str, comparator: str) -> str:
    """The form two strings are compared in."""
    return text.translate(_ASCII_FOLD) if comparator == "i;ascii-casemap" else text


def numeric(text: str) -> int | None:
    """i;ascii-numeric: the leading digits' number, None for positive infinity."""
    end = 0
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return int(text[:end]) if end else None


def _order(value: str, key: str, comparator: str) -> int:
    """-1, 0 or 1: how ``value`` compares with ``key`` under the comparator."""
    if comparator == "i;ascii-numeric":
        left, right = numeric(value), numeric(key)
        if left is None or right is None:
            return (left is None) - (right is None)
        return (left > right) - (left < right)
    left_text, right_text = fold(value, comparator), fold(key, comparator)
    return (left_text > right_text) - (left_text < right_text)


_RELATIONS = {
    "gt": lambda order: order > 0,
    "ge": lambda order: order >= 0,
    "lt": lambda order: order < 0,
    "le": lambda order: order <= 0,
    "eq": lambda order: order == 0,
    "ne": lambda order: order != 0,
}


def relation(value: str, key: str, operator: str, comparator: str) -> bool:
    return _RELATIONS[operator.lower()](_order(value, key, comparator))


def compile_pattern(pattern: str, comparator: str) -> tuple[list[Piece], list[str]]:
    """A :matches pattern as pieces between ``*`` (characters folded for the comparator)
    and the wildcard kinds in order ("*" or "?"), for the match variables."""
    pieces: list[Piece] = []
    wildcards: list[str] = []
    current: list[object] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            index += 1
            current.append(fold(pattern[index], comparator))
        elif char == "*":
            pieces.append(tuple(current))
            current = []
            wildcards.append("*")
        elif char == "?":
            current.append(ANY)
            wildcards.append("?")
        else:
            current.append(fold(char, comparator))
        index += 1
    pieces.append(tuple(current))
    return pieces, wildcards


def _piece_at(text: str, start: int, piece: Piece) -> bool:
    for offset, want in enumerate(piece):
        if want is not ANY and text[start + offset] != want:
            return False
    return True


def _find_piece(text: str, start: int, stop: int, piece: Piece) -> int:
    """The leftmost position in [start, stop - len(piece)] where ``piece`` matches, or -1."""
    length = len(piece)
    if length == 0:
        return start if start <= stop else -1
    literal = piece[0] if piece[0] is not ANY else None
    position = start
    last = stop - length
    while position <= last:
        if literal is not None:
            position = text.find(literal, position, last + 1)
            if position < 0:
                return -1
        if _piece_at(text, position, piece):
            return position
        position += 1
    return -1


def glob(value: str, pattern: str, comparator: str) -> list[str] | None:
    """``:matches``: None when ``value`` does not match, else what each wildcard matched."""
    pieces, _ = compile_pattern(pattern, comparator)
    text = fold(value, comparator)
    spans: list[tuple[int, int]] = []  # (start, end) of each piece in text
    if len(pieces) == 1:
        piece = pieces[0]
        if len(text) != len(piece) or not _piece_at(text, 0, piece):
            return None
        spans.append((0, len(text)))
    else:
        first, last = pieces[0], pieces[-1]
        end_start = len(text) - len(last)
        if end_start < len(first) or not _piece_at(text, 0, first):
            return None
        if not _piece_at(text, end_start, last):
            return None
        spans.append((0, len(first)))
        position = len(first)
        for piece in pieces[1:-1]:
            found = _find_piece(text, position, end_start, piece)
            if found < 0:
                return None
            spans.append((found, found + len(piece)))
            position = found + len(piece)
        spans.append((end_start, len(text)))
    return _captures(value, pieces, spans)


def _captures(value: str, pieces: list[Piece], spans: list[tuple[int, int]]) -> list[str]:
    """Wildcard expansions in pattern order: each "?" inside a piece, each "*" between."""
    out: list[str] = []
    for number, (piece, (start, end)) in enumerate(zip(pieces, spans, strict=True)):
        if number > 0:
            out.append(value[spans[number - 1][1] : start])
        out.extend(value[start + offset] for offset, want in enumerate(piece) if want is ANY)
        del end
    return out


def match(
    values: Sequence[str],
    keys: Sequence[str],
    match_type: str,
    comparator: str,
    operator: str | None = None,
) -> tuple[bool, list[str] | None]:
    """Does any value match any key? Returns (result, match variables of :matches:
    ${0} the whole value then the wildcards)."""
    if match_type in ("contains", "matches") and comparator == "i;ascii-numeric":
        raise MatchError(f"i;ascii-numeric cannot do :{match_type}")
    for value in values:
        for key in keys:
            if match_type == "is":
                if comparator == "i;ascii-numeric":
                    if _order(value, key, comparator) == 0:
                        return True, None
                elif fold(value, comparator) == fold(key, comparator):
                    return True, None
            elif match_type == "contains":
                if fold(key, comparator) in fold(value, comparator):
                    return True, None
            elif match_type == "matches":
                captures = glob(value, key, comparator)
                if captures is not None:
                    return True, [value, *captures]
            elif match_type == "value":
                assert operator is not None
                if relation(value, key, operator, comparator):
                    return True, None
    return False, None


def count_match(count: int, keys: Sequence[str], operator: str, comparator: str) -> bool:
    """``:count``: the number of values compared with each key (RFC 5231 section 4.1)."""
    return any(relation(str(count), key, operator, comparator) for key in keys)
