"""What running a script produces: its actions, and the limits a run is held to.

RFC 5228 section 2.10: actions are collected while the script runs and carried out only at
its end, so a run that fails part way (a runtime error, a limit) has done nothing and the
message gets the implicit keep. ``keep``, ``fileinto``, ``redirect``, ``discard`` and
``reject`` cancel the implicit keep (``:copy`` ones do not, RFC 3894); ``vacation`` and the
flag commands do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stalwart_py.store import FLAG_NAMES

# An IMAP keyword is an atom (RFC 9051 section 9): no controls, space or atom-specials.
_KEYWORD = re.compile(r"[^\x00-\x20\x7f(){%*\"\\\]]+\Z")
DAY = 86400.0
_CANONICAL_FLAGS = {name: "\\" + name[1:].capitalize() for name in FLAG_NAMES}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one run; exceeding one is a runtime error (so: implicit keep)."""

    max_script_size: int = 1 << 20  # bytes; ManageSieve enforces its own, smaller, limit
    max_redirects: int = 4  # redirect actions per message (ManageSieve MAXREDIRECTS)
    max_steps: int = 100_000  # commands run, tests evaluated and values compared
    max_actions: int = 64  # fileinto, keep, redirect, ... per run
    max_includes: int = 16  # scripts included in one run
    max_include_depth: int = 4
    max_variables: int = 256  # per scope (RFC 5229 section 6)
    max_variable_size: int = 4096  # characters; longer values are truncated (RFC 5229 3)
    max_body: int = 1 << 20  # characters of body text a body test examines
    # The bounds of a vacation period, :days or :seconds (sieve.vacation.min-period and
    # max-period): RFC 5230 4.1 says a site maximum SHOULD NOT be under 30 days.
    vacation_min_period: float = DAY
    vacation_max_period: float = 90 * DAY


class SieveRuntimeError(Exception):
    """An error while running a script: the message gets the implicit keep."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(where + message)
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Keep:
    flags: frozenset[str]


@dataclass(frozen=True, slots=True)
class FileInto:
    mailbox: str
    flags: frozenset[str]
    create: bool
    copy: bool


@dataclass(frozen=True, slots=True)
class Redirect:
    address: str
    copy: bool


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    extended: bool  # ereject


@dataclass(frozen=True, slots=True)
class Discard:
    pass


@dataclass(frozen=True, slots=True)
class Vacation:
    """RFC 5230: the reply, once the rules of section 4 say to send one."""

    reason: str
    subject: str | None
    sender: str | None  # :from
    addresses: tuple[str, ...]
    mime: bool
    handle: str
    period: float  # seconds between two replies to the same sender (0: always)


@dataclass(frozen=True, slots=True)
class Notify:
    """RFC 5435: a notification by the method (a mailto URI, see notify.py)."""

    method: str
    sender: str | None  # :from
    importance: int  # 1 high, 2 normal, 3 low
    options: tuple[str, ...]
    message: str | None


Action = Keep | FileInto | Redirect | Reject | Discard | Vacation | Notify


@dataclass(frozen=True, slots=True)
class Outcome:
    """The actions of a finished run and whether the implicit keep still applies, with the
    flags it files with (the internal variable of RFC 5232 at the end)."""

    actions: tuple[Action, ...]
    implicit_keep: bool
    keep_flags: frozenset[str]
    message: bytes | None = None  # the message as editheader left it, if it edited it
    # RFC 7352: (key, seconds, :last) of each duplicate test run, recorded if the run ends well
    duplicates: tuple[tuple[str, float, bool], ...] = ()


def split_flags(strings: tuple[str, ...] | list[str]) -> list[str]:
    """RFC 5232 section 3: a flag list is strings of space-separated flags; flags compare
    case-insensitively and each appears once (the first spelling is kept)."""
    seen: dict[str, str] = {}
    for text in strings:
        for flag in text.split():
            seen.setdefault(flag.lower(), flag)
    return list(seen.values())


def store_flags(flags: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The flags a message can be stored with: the system flags in their canonical
    spelling and valid keywords; anything else (``\\Recent``, ``\\Bogus``) is dropped."""
    out: set[str] = set()
    for flag in flags:
        canonical = _CANONICAL_FLAGS.get(flag.lower())
        if canonical is not None:
            out.add(canonical)
        elif not flag.startswith("\\") and _KEYWORD.match(flag):
            out.add(flag)
    return frozenset(out)
