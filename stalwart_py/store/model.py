"""What the store holds, as the rest of the server sees it: plain frozen records and errors.

Mailbox and message rules follow IMAP (RFC 9051), which asks the most of the store:

* UIDs strictly increase within a mailbox and are never reused while its UIDVALIDITY stays
  the same; UIDNEXT is the UID the next message will get.
* Every change to a message (arrival, flag change, expunge) gets a MODSEQ (RFC 7162) greater
  than every earlier one in that mailbox; HIGHESTMODSEQ is the greatest. Expunges are kept as
  tombstones with their MODSEQ, so a client can ask what vanished since a MODSEQ it knows.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
from dataclasses import dataclass, field
from enum import IntFlag

SPECIAL_USE_MAILBOXES = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
MAILBOX_DELIMITER = "/"


class SystemFlag(IntFlag):
    """The IMAP system flags, stored as bits; keywords are stored as text."""

    SEEN = 1
    ANSWERED = 2
    FLAGGED = 4
    DELETED = 8
    DRAFT = 16


FLAG_NAMES: dict[str, SystemFlag] = {
    "\\seen": SystemFlag.SEEN,
    "\\answered": SystemFlag.ANSWERED,
    "\\flagged": SystemFlag.FLAGGED,
    "\\deleted": SystemFlag.DELETED,
    "\\draft": SystemFlag.DRAFT,
}
CANONICAL_FLAG = {bit: f"\\{name[1:].capitalize()}" for name, bit in FLAG_NAMES.items()}


def split_flags(flags: frozenset[str] | set[str] | tuple[str, ...]) -> tuple[int, str]:
    """IMAP flag names -> (system flag bits, space-separated sorted keywords)."""
    bits = 0
    keywords: set[str] = set()
    for name in flags:
        bit = FLAG_NAMES.get(name.lower())
        if bit is not None:
            bits |= bit
        elif not name.startswith("\\"):
            keywords.add(name)
    return bits, " ".join(sorted(keywords))


@functools.lru_cache(maxsize=4096)
def join_flags(bits: int, keywords: str) -> frozenset[str]:
    """(system flag bits, keywords text) -> IMAP flag names.

    Cached: a mailbox has few distinct flag sets, and every message row read goes through
    here, so equal sets are one shared (immutable) object instead of one each."""
    names = {CANONICAL_FLAG[flag] for flag in SystemFlag if bits & flag}
    if keywords:
        names.update(keywords.split(" "))
    return frozenset(names)


class StoreError(Exception):
    """A request the store cannot carry out; the message says why, for the client."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class QuotaExceeded(StoreError):
    """Delivery or append would exceed the account's quota (RFC 9208 OVERQUOTA)."""


class SchemaTooNew(StoreError):
    """The database was written by a newer stalwart-py than this one."""


def database_failure(error: BaseException) -> str | None:
    """``error`` as one log line (its type and message, whose lines libpq breaks) when the
    database failed to answer: a connection lost or refused, a timeout, a locked or unreadable
    file. Its traceback would say nothing more (it is the database, not a bug here). None for
    any other error: a bug, whose traceback is wanted."""
    kinds: tuple[type[BaseException], ...] = (OSError, sqlite3.OperationalError)
    # Loaded when the PostgreSQL store is the one in use; never imported just to look.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        kinds += (psycopg.OperationalError, psycopg.InterfaceError)
    if not isinstance(error, kinds):
        return None
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    created: float


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    address: str
    is_admin: bool
    quota_bytes: int | None  # None: no limit
    quota_messages: int | None
    used_bytes: int
    used_messages: int
    created: float
    # Disabled by an administrator: every login refused (mail protocols, the API, the web
    # pages), its web sessions ended; mail for it is still accepted and delivered.
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the directory needs to check a password; never leaves the core."""

    account_id: int
    address: str
    secret: str  # a passwords.hash_password() string
    scram: str | None  # a passwords.scram_credentials() string
    two_factor: bool = False  # two-factor sign-in is enabled (``stalwart_py.two_factor``)


@dataclass(frozen=True, slots=True)
class AppPassword:
    """A password the server generated for one mail client of an account, limited to some
    mail protocols (``stalwart_py.app_passwords``); the secret itself is never kept."""

    id: int
    account_id: int
    name: str
    protocols: tuple[str, ...]  # of app_passwords.PROTOCOLS
    created: float


@dataclass(frozen=True, slots=True)
class AppPasswordCredentials:
    """An app password as a login checks it; never leaves the core."""

    id: int
    name: str
    protocols: tuple[str, ...]
    secret: str  # a passwords.hash_password() string of the generated password


@dataclass(frozen=True, slots=True)
class Totp:
    """An account's two-factor sign-in (``stalwart_py.totp``): started, or enabled once a
    code confirmed it. The secret never leaves the core (nor the log)."""

    account_id: int
    secret: str  # base32
    enabled: bool
    last_step: int  # the last time step a code was accepted for; -1 before any
    created: float
    recovery_codes_left: int


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser of the web pages (``protocols/http/web``), as the store keeps it:
    the SHA-256 of its cookie's token (never the token), the account it is for (read afresh
    with it), its CSRF token, and its times. ``pending`` sessions have passed the password but
    not yet the second factor: they open the code's page and nothing else."""

    token_hash: str  # hex SHA-256 of the cookie's token
    account: Account
    csrf: str
    pending: bool
    created: float
    last_seen: float
    expires: float  # the absolute end, whatever the use
    peer: str  # the client address it signed in from, for the account page


@dataclass(frozen=True, slots=True)
class Alias:
    address: str  # "sales@example.com", or "@example.com" for a catch-all
    targets: tuple[str, ...]  # addresses: local accounts or remote


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    account_id: int
    name: str  # full name with "/" between levels; "INBOX" for the inbox
    special_use: str | None  # "\\Sent", ... (RFC 6154)
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    messages: int
    unseen: int
    deleted: int
    size: int  # octets, the sum of the messages' sizes
    deleted_size: int = 0  # octets of the \Deleted messages: what an expunge gives back


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One message of a mailbox: what a session keeps in its view."""

    uid: int
    modseq: int
    flags: frozenset[str]
    internaldate: float
    size: int
    blob_id: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message of ``Store.append_many`` (IMAP MULTIAPPEND): its octets, flags and
    internal date (None: now)."""

    data: bytes
    flags: frozenset[str] = frozenset()
    internaldate: float | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message with its cached MIME structure (``stalwart_py.mime`` JSON)."""

    info: MessageInfo
    structure: str


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """What happened in a mailbox after a MODSEQ (RFC 7162)."""

    highestmodseq: int
    uidnext: int
    changed: tuple[MessageInfo, ...]  # new or flag-changed, modseq greater than asked
    vanished: tuple[int, ...]  # UIDs expunged after the asked MODSEQ


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    """The result of a STORE: what changed, and what UNCHANGEDSINCE refused."""

    changed: tuple[MessageInfo, ...]
    unchanged: tuple[MessageInfo, ...]  # matched but already as asked (modseq not bumped)
    failed: tuple[int, ...]  # UIDs whose modseq was greater than UNCHANGEDSINCE


@dataclass(frozen=True, slots=True)
class SieveScript:
    name: str
    body: str
    active: bool


@dataclass(frozen=True, slots=True)
class JunkCounts:
    """What the junk classifier knows of some tokens, for one account: the messages it
    trained on of each class, and per token (of those asked for that it has seen) the
    (non-junk, junk) messages it appeared in."""

    ham: int
    spam: int
    tokens: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class LocalDelivery:
    """One copy of a message for a local account, as filtering decided."""

    account_id: int
    mailbox: str = "INBOX"
    flags: frozenset[str] = frozenset()
    create: bool = False  # create the mailbox when it does not exist (Sieve :create)


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    address: str
    orcpt: str | None = None  # RFC 3461 ORCPT, as "rfc822;addr"
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY: SUCCESS, FAILURE, DELAY, or NEVER
    # A recipient already tried before it was queued (the deferred spool writes a message
    # down after its first transient failure): its attempts so far, when to try again
    # (None: at once) and the last error.
    attempts: int = 0
    next_attempt: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message for remote recipients, for the outbound queue."""

    mail_from: str  # "" for a bounce
    recipients: tuple[QueuedRecipient, ...]
    ret: str | None = None  # RFC 3461 RET: FULL or HDRS
    envid: str | None = None
    source: str = "smtp"  # smtp, sieve, bounce, http
    smtputf8: bool = False
    created: float | None = None  # when it arrived (for queue.max-age); None: now


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Per local delivery (in the order asked): the UID given, or why it failed."""

    uid: int | None
    error: StoreError | None = None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    id: int
    mail_from: str
    created: float
    next_attempt: float
    attempts: int
    ret: str | None
    envid: str | None
    source: str
    size: int
    blob_id: int
    smtputf8: bool
    recipients: tuple[QueueRecipientState, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class QueueRecipientState:
    id: int
    address: str
    domain: str
    orcpt: str | None
    notify: tuple[str, ...]
    status: str  # pending, delivered, failed
    attempts: int
    next_attempt: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RecipientUpdate:
    """The outcome of one delivery attempt to one queued recipient."""

    id: int
    status: str  # pending (try again at next_attempt), delivered, failed
    next_attempt: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """A delivery status (RFC 3464) or feedback (RFC 5965) report received for a domain."""

    id: int
    kind: str  # "dsn" or "arf"
    received: float
    domain: str
    mail_from: str
    summary: str  # JSON: the fields that matter, parsed from the report


@dataclass(frozen=True, slots=True)
class CachedStsPolicy:
    """A destination's MTA-STS policy as fetched (RFC 8461 3.2), kept until ``expires``."""

    domain: str
    policy_id: str  # the id= of the _mta-sts TXT record it was fetched for
    body: str  # the policy text
    fetched: float
    expires: float  # fetched + max_age


@dataclass(frozen=True, slots=True)
class TlsResultCount:
    """TLS sessions counted for a TLS-RPT report (RFC 8460 4): one UTC ``day``, one
    destination ``domain``, one policy (JSON) and one failure (JSON; "" for successes)."""

    day: str  # YYYY-MM-DD, UTC
    domain: str
    policy: str
    failure: str
    count: int


@dataclass(frozen=True, slots=True)
class StoredDkimKey:
    """A DKIM signing key kept in the store (``stalwart-py dkim generate``), the same on every
    node. ``private_key`` is PEM: a secret, never logged nor in any API answer."""

    domain: str  # A-label form, lowercase
    selector: str
    private_key: bytes = field(repr=False)
    created: float


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    """A certificate installed at run time (ACME), the same on every node: the PEM chain
    (leaf first) and its PEM private key (a secret, never logged nor in any API answer)."""

    id: str
    chain: bytes
    private_key: bytes = field(repr=False)
    installed: float  # when it was installed; it changes with every renewal


@dataclass(frozen=True, slots=True)
class AcmeAccount:
    """What the ACME client keeps of one ``[acme."<id>"]``: its account key (PEM, a secret),
    the account's URL at its directory, and the last renewal's outcome (JSON) for the other
    nodes' ``GET /api/certificates``."""

    id: str
    private_key: bytes = field(repr=False)
    directory: str | None = None
    url: str | None = None
    state: str | None = None
