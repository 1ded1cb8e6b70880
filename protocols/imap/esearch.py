"""``* ESEARCH`` replies for RETURN options (RFC 4731, RFC 5267 section 3 for ESORT, and
PARTIAL of RFC 9394), from the result already in the order to report.

For SORT (``ordered``) MIN and MAX are the first and last messages in sort order and ALL is
the sorted list, runs of consecutive ascending numbers written as ranges so the order is kept
(RFC 5267 section 3.1). PARTIAL ``a:b`` returns the a-th to b-th results, ``-a:-b`` counted
from the last; the range is echoed with the results in it, ``NIL`` when there are none
(RFC 9394 section 3.1).
"""

from __future__ import annotations

from protocols.imap.arguments import Command
from protocols.imap.sequence import format_set
from protocols.imap.sort_parse import Returns


def partial_slice(numbers: list[int], bounds: tuple[int, int]) -> list[int]:
    """The results a PARTIAL range selects (1-based, inclusive; negative from the end)."""
    first, last = bounds
    if first > 0:
        return numbers[first - 1 : last]
    count = len(numbers)
    start = max(0, count + last)  # -100 -> count - 100
    end = max(0, count + first + 1)  # -1 -> count
    return numbers[start:end]


def esearch_response(
    command: Command, returns: Returns, numbers: list[int], *, ordered: bool = False
) -> bytes:
    """The ESEARCH line for ``numbers`` (ascending, or in sort order when ``ordered``)."""
    options = returns.options
    if not options - {"CONTEXT", "UPDATE"} and returns.partial is None:
        options = options | {"ALL"}
    parts = [b'* ESEARCH (TAG "' + command.tag.encode() + b'")']
    if command.uid:
        parts.append(b"UID")
    if numbers and "MIN" in options:
        parts.append(b"MIN %d" % (numbers[0] if ordered else min(numbers)))
    if numbers and "MAX" in options:
        parts.append(b"MAX %d" % (numbers[-1] if ordered else max(numbers)))
    if "COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in options:
        parts.append(b"ALL " + format_set(numbers).encode())
    if returns.partial is not None:
        parts.append(partial_response(numbers, returns.partial))
    return b" ".join(parts) + b"\r\n"


def partial_response(numbers: list[int], bounds: tuple[int, int]) -> bytes:
    """``PARTIAL (a:b set)``, ``NIL`` for the set when the range holds no result."""
    chosen = partial_slice(numbers, bounds)
    found = format_set(chosen).encode() if chosen else b"NIL"
    return b"PARTIAL (%d:%d %s)" % (bounds[0], bounds[1], found)
