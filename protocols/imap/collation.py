"""Collations for SORT and THREAD: each turns a string into a key whose plain ordering
(``<`` on Python strings, i.e. by code point) is the collation's ordering.

``i;ascii-casemap`` (RFC 4790 section 9.2): ASCII letters are compared as upper case,
everything else by octet. For UTF-8 text, ordering by code point is ordering by octet.

``i;unicode-casemap`` (RFC 5051): each character is mapped to its titlecase form, the result
is decomposed (NFD), and the strings are compared by code point. It is what SORT uses here,
as RFC 5255 section 4.2 (I18NLEVEL=1) and Dovecot do: for ASCII text the two agree, and for
the rest (``ä`` and ``Ä``, ``ß``) it is the case-insensitive order a reader expects.

Keys are computed once per message body and cached (``sort.KeyCache``), so their cost is
paid at the first SORT of a mailbox, not at every one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_casemap(text: str) -> str:
    """The i;ascii-casemap key of ``text``."""
    return text.translate(_ASCII_UPPER)


def unicode_casemap(text: str) -> str:
    """The i;unicode-casemap key of ``text`` (RFC 5051 section 2)."""
    if text.isascii():
        return text.upper()
    # str.title() of one character is its titlecase mapping (per character: word
    # boundaries do not matter here, as RFC 5051 maps every character alike).
    return unicodedata.normalize("NFD", "".join(char.title() for char in text))


COLLATIONS: dict[str, Callable[[str], str]] = {
    "i;ascii-casemap": ascii_casemap,
    "i;unicode-casemap": unicode_casemap,
}
DEFAULT = unicode_casemap
