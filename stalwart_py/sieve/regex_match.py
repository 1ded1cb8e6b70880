"""The ``:regex`` match type (draft-ietf-sieve-regex), safe to run on anyone's mail.

A key is a POSIX extended regular expression (IEEE 1003.2), searched for anywhere in the
value, as Pigeonhole does with ``regcomp(REG_EXTENDED)``/``regexec``. Python's syntax is a
superset of ERE for the constructs scripts use (``( ) | * + ? { } [ ] ^ $ .``, bracket
expressions with ``[:alpha:]``-style classes, which the ``regex`` package understands);
Perl extensions (``\\d``, lookarounds, backreferences) are accepted too, so a script can
go beyond ERE, never fall short of it.

Comparators: ``i;octet`` is case-sensitive, ``i;ascii-casemap`` compiles the pattern with
IGNORECASE (the draft section 3: "as if both were folded"); ``i;ascii-numeric`` cannot do
``:regex`` (an error at upload).

Match variables (RFC 5229 section 3.2 applied by the draft, section 4): ``${0}`` is the
matched substring, ``${1}``... the groups (a group that did not take part is "").

Safety: Python's backtracking engine can take exponential time on patterns like
``(a+)+$``. Every search runs in the ``regex`` package with a ``timeout``: a search over its
budget is a runtime error (the message is kept, RFC 5228 2.10.6), so one evil pattern costs
a delivery at most ``TIMEOUT`` seconds per comparison and the total of a run is bounded by
``MAX_TOTAL``. Compiled patterns are cached by text.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import regex

TIMEOUT = 0.25  # seconds one search may take
MAX_TOTAL = 1.0  # seconds all the :regex searches of one test may take
MAX_PATTERN = 8192  # characters


class RegexError(Exception):
    """An invalid pattern, or a search over its time budget."""


@functools.lru_cache(maxsize=512)
def compile_key(pattern: str, caseless: bool) -> regex.Pattern[str]:
    """The compiled pattern; raises RegexError when it is not a valid expression."""
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"the regular expression is longer than {MAX_PATTERN} characters")
    flags = regex.VERSION0 | (regex.IGNORECASE if caseless else 0)
    try:
        return regex.compile(pattern, flags)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise RegexError(f'"{pattern}" is not a valid regular expression: {exc}') from None


def regex_match(
    values: Sequence[str], keys: Sequence[str], comparator: str, *, timeout: float = TIMEOUT
) -> tuple[bool, list[str] | None]:
    """Does any key's expression occur in any value? (result, match variables)."""
    caseless = comparator == "i;ascii-casemap"
    compiled = [compile_key(key, caseless) for key in keys]
    deadline = time.monotonic() + MAX_TOTAL
    for value in values:
        for pattern in compiled:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RegexError("the :regex searches took longer than their time budget")
            try:
                found = pattern.search(value, timeout=min(timeout, left))
            except TimeoutError:
                raise RegexError(
                    f'the regular expression "{pattern.pattern}" took longer than {timeout} s'
                ) from None
            if found is not None:
                return True, [found.group(0), *(group or "" for group in found.groups())]
    return False, None


def quote_regex(text: str) -> str:
    """``set :quoteregex``: ``text`` with every ERE special character escaped."""
    return regex.sub(r"([\\^$.\[\]|()?*+{}])", r"\\\1", text)
