"""The verdict as header fields, and what Sieve's ``spamtest`` reads back from them.

We add, to each copy of checked mail (mail that is not submission) we deliver::

    X-Spam-Status: Yes, score=0.97 required=0.90
    X-Spam-Score: 0.97

or ``No, score=0.03 required=0.90``, or, before an account has trained enough,
``X-Spam-Status: No, not enough training (junk=3 not-junk=1)`` without a score. The form
follows SpamAssassin's, which mail clients and people already read. Every ``X-Spam-Status``,
``X-Spam-Score`` and ``X-Spam-Flag`` field arriving with checked mail is removed first: a
sender could otherwise write ``X-Spam-Status: No, score=0.00`` and be believed by a Sieve
rule (or a person). Submission mail is neither scored nor stripped: it is our users' own.

RFC 5235 (``spamtest``, ``spamtestplus``) asks for the result as a number: ``0`` when the
message was not tested, else 1 (surely not junk) to 10 (surely junk); with ``:percent``, 0 to
100 (and ``0`` when not tested: a script tells the two apart with a test without
``:percent`` first, as the RFC's examples do).
"""

from __future__ import annotations

import math
import re

from stalwart_py.mime.headers import scan_header

STATUS = "X-Spam-Status"
SCORE = "X-Spam-Score"
STRIPPED = (b"x-spam-status", b"x-spam-score", b"x-spam-flag")
_FIELD_START = re.compile(rb"^([^\x00-\x20\x7f:]+)[ \t]*:", re.MULTILINE)
_SCORE = re.compile(r"\bscore=(-?[0-9]+(?:\.[0-9]+)?)")


def status_fields(
    score: float | None, junk: bool, threshold: float, trained: tuple[int, int]
) -> bytes:
    """The fields to add for one account (CRLF-terminated)."""
    if score is None:
        ham, spam = trained
        return f"{STATUS}: No, not enough training (junk={spam} not-junk={ham})\r\n".encode()
    verdict = "Yes" if junk else "No"
    return (
        f"{STATUS}: {verdict}, score={score:.2f} required={threshold:.2f}\r\n"
        f"{SCORE}: {score:.2f}\r\n"
    ).encode()


def strip_fields(message: bytes) -> bytes:
    """``message`` without the top-level X-Spam-Status/-Score/-Flag fields (folded lines
    included); the same object when it has none, so the common case copies nothing."""
    length, _ = scan_header(message, 0, len(message))
    head = message[:length]
    if b"x-spam-" not in head.lower():
        return message
    kept = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):  # a continuation belongs to the field before
            if not skipping:
                kept.append(line)
            continue
        match = _FIELD_START.match(line)
        skipping = match is not None and match.group(1).lower() in STRIPPED
        if not skipping:
            kept.append(line)
    return b"".join(kept) + message[length:]


def score_of(status: str | None) -> float | None:
    """The score an ``X-Spam-Status`` value of ours carries; None when not tested."""
    if status is None:
        return None
    match = _SCORE.search(status)
    if match is None:
        return None
    return min(max(float(match.group(1)), 0.0), 1.0)


def spamtest_value(status: str | None, *, percent: bool) -> str:
    """RFC 5235 section 3.2 (spamtest) and 3.3 (``:percent``, spamtestplus)."""
    score = score_of(status)
    if score is None:
        return "0"
    # halves round up (Python's round() would take 4.5 to 4)
    if percent:
        return str(math.floor(score * 100 + 0.5))
    return str(1 + math.floor(score * 9 + 0.5))
