"""The arguments of each client command, as ``commands.parse_command`` returns them.

Small frozen values. Mailbox names stay the raw bytes the client sent: whether they are
modified UTF-7 or UTF-8 depends on the session (``ENABLE IMAP4rev2``), so the session
decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocols.imap.fetch_items import FetchItem, FetchModifiers
from protocols.imap.search_keys import SearchKey
from protocols.imap.sequence import SequenceSet


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # "FETCH", "LOGIN"...
    uid: bool = False  # the UID prefix (UID FETCH, UID STORE, ...)
    args: Any = None


@dataclass(frozen=True, slots=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    mechanism: str
    initial_response: bytes | None  # SASL-IR (RFC 4959), still base64; b"=" is empty


@dataclass(frozen=True, slots=True)
class Qresync:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None  # (sequence numbers, UIDs)


@dataclass(frozen=True, slots=True)
class Select:
    mailbox: bytes
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True, slots=True)
class MailboxArg:
    """CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT."""

    mailbox: bytes
    special_use: tuple[str, ...] = ()  # CREATE ... (USE (\Sent)), RFC 6154 section 3


@dataclass(frozen=True, slots=True)
class Rename:
    old: bytes
    new: bytes


@dataclass(frozen=True, slots=True)
class ListArgs:
    reference: bytes
    patterns: tuple[bytes, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()  # RETURN (STATUS (...)), RFC 5819
    extended: bool = False  # the LIST-EXTENDED syntax was used


@dataclass(frozen=True, slots=True)
class Status:
    mailbox: bytes
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Enable:
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Id:
    fields: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Fetch:
    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    modifiers: FetchModifiers = field(default_factory=FetchModifiers)


@dataclass(frozen=True, slots=True)
class Store:
    sequence: SequenceSet
    mode: str  # "add", "remove", "replace"
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class CopyMove:
    sequence: SequenceSet
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class Search:
    criteria: SearchKey
    returns: tuple[str, ...] | None = None  # None: plain SEARCH; () is RETURN ()
    charset: str | None = None
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL a:b), RFC 9394


@dataclass(frozen=True, slots=True)
class UidSet:
    """UID EXPUNGE's argument."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class QuotaRoot:
    root: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    root: str
    limits: tuple[tuple[str, int], ...]
