"""The store interface: everything the protocols, the directory and delivery may ask of it.

Backends implement this class (``SqliteStore`` is the embedded default); nothing outside
``stalwart_py.store`` knows which one runs. Every method that returns normally has done what
it says durably: a write is on disk (fsync'd) before it returns.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stalwart_py.mime.sortfields import SortFields
from stalwart_py.store.base_shared_state import SharedStateStore
from stalwart_py.store.base_sign_in import SignInStore
from stalwart_py.store.blobstore import BlobBackend
from stalwart_py.store.change_hub import ChangeHub
from stalwart_py.store.model import (
    Account,
    Alias,
    CachedStsPolicy,
    Credentials,
    DeliveryOutcome,
    Domain,
    FlagUpdate,
    JunkCounts,
    LocalDelivery,
    Mailbox,
    MailboxChanges,
    MailboxCounts,
    MessageInfo,
    NewMessage,
    NotFound,
    OutboundMessage,
    QueueEntry,
    RecipientUpdate,
    Report,
    SieveScript,
    StoredMessage,
    TlsResultCount,
)

if TYPE_CHECKING:
    from stalwart_py.singleton import Lease

FlagMode = Literal["add", "remove", "replace"]
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Unchanged:
    """Default of an optional update argument: leave the value as it is."""


UNCHANGED = Unchanged()


class Store(SignInStore, SharedStateStore):
    changes: ChangeHub  # wake-ups for sessions watching a mailbox

    @abc.abstractmethod
    async def open(self) -> None:
        """Open (creating or migrating the schema as needed)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def disk_usage(self) -> int:
        """Bytes the store occupies on disk."""

    @abc.abstractmethod
    async def integrity_check(self) -> str:
        """``"ok"`` or a description of the damage found."""

    @abc.abstractmethod
    async def backup(self, directory: Path) -> list[Path]:
        """Write a consistent copy of the store into ``directory`` while it is in use;
        returns the files written."""

    # -- bodies in an external blob backend (stalwart_py/store/blobstore) -----------------

    @property
    @abc.abstractmethod
    def blob_backend(self) -> BlobBackend | None:
        """Where new message bodies go; None: into the database itself."""

    @abc.abstractmethod
    async def claim_orphan_blobs(self, digests: Sequence[bytes]) -> list[bytes]:
        """For the orphan sweep: claim for deletion each digest no body row has (and no claim
        has yet); returns the claimed ones. The look and the claim are one transaction,
        serialized against a writer inserting a row of the same digest (the argument is in
        ``blobstore/__init__.py``)."""

    @abc.abstractmethod
    async def finish_blob_claims(self, digests: Sequence[bytes]) -> None:
        """The claimed bodies are deleted: keep the claims as tombstones."""

    @abc.abstractmethod
    async def unfinished_blob_claims(self, claimed_before: float) -> list[bytes]:
        """Claims made before ``claimed_before`` (Unix time) by a sweep that did not finish
        them."""

    @abc.abstractmethod
    async def forget_blob_tombstones(self, before: float) -> int:
        """Drop the tombstones of deletions done before ``before`` (Unix time)."""

    # -- domains, accounts, aliases -------------------------------------------------------

    @abc.abstractmethod
    async def add_domain(self, name: str) -> Domain:
        """Raises AlreadyExists."""

    @abc.abstractmethod
    async def delete_domain(self, name: str) -> None:
        """Raises NotFound, or StoreError while accounts or aliases use it."""

    @abc.abstractmethod
    async def list_domains(self) -> list[Domain]: ...

    @abc.abstractmethod
    async def is_local_domain(self, name: str) -> bool: ...

    @abc.abstractmethod
    async def add_account(
        self,
        address: str,
        secret: str,
        scram: str | None,
        *,
        is_admin: bool = False,
        quota_bytes: int | None = None,
        quota_messages: int | None = None,
    ) -> Account:
        """Create an account with INBOX, Sent, Drafts, Trash, Junk and Archive (with their
        special-use attributes). Raises NotFound (domain not local) or AlreadyExists."""

    @abc.abstractmethod
    async def get_account(self, address: str) -> Account | None: ...

    @abc.abstractmethod
    async def get_account_by_id(self, account_id: int) -> Account | None: ...

    @abc.abstractmethod
    async def list_accounts(self) -> list[Account]: ...

    @abc.abstractmethod
    async def count_accounts(self) -> int: ...

    @abc.abstractmethod
    async def update_account(
        self,
        address: str,
        *,
        secret: str | Unchanged = UNCHANGED,
        scram: str | Unchanged | None = UNCHANGED,
        is_admin: bool | Unchanged = UNCHANGED,
        quota_bytes: int | Unchanged | None = UNCHANGED,
        quota_messages: int | Unchanged | None = UNCHANGED,
        disabled: bool | Unchanged = UNCHANGED,
    ) -> Account:
        """Raises NotFound. A disabled account has no credentials (``get_credentials``)."""

    @abc.abstractmethod
    async def delete_account(self, address: str) -> None:
        """Delete the account with its mailboxes, messages and scripts. Raises NotFound."""

    @abc.abstractmethod
    async def get_credentials(self, address: str) -> Credentials | None: ...

    @abc.abstractmethod
    async def add_alias(self, address: str, targets: Sequence[str]) -> Alias:
        """``address`` is ``local@domain`` or ``@domain`` (catch-all) of a local domain;
        targets are added to an existing alias. Raises NotFound (domain not local)."""

    @abc.abstractmethod
    async def delete_alias(self, address: str, targets: Sequence[str] = ()) -> None:
        """Remove the given targets, or the whole alias. Raises NotFound."""

    @abc.abstractmethod
    async def get_alias(self, address: str) -> Alias | None: ...

    @abc.abstractmethod
    async def list_aliases(self) -> list[Alias]: ...

    @abc.abstractmethod
    async def aliases_of(self, address: str) -> list[str]:
        """Every alias whose targets include ``address`` (catch-alls included)."""

    # -- mailboxes --------------------------------------------------------------------------

    @abc.abstractmethod
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...

    @abc.abstractmethod
    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        """``INBOX`` is matched case-insensitively, other names exactly."""

    @abc.abstractmethod
    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...

    @abc.abstractmethod
    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> Mailbox:
        """Raises AlreadyExists."""

    @abc.abstractmethod
    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Delete a mailbox and its messages (not INBOX). Raises NotFound or StoreError."""

    @abc.abstractmethod
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Rename with every mailbox below it. Renaming INBOX moves its messages to a new
        mailbox and leaves INBOX empty (RFC 9051 6.3.6). A renamed mailbox keeps its
        UIDVALIDITY. Raises NotFound or AlreadyExists."""

    @abc.abstractmethod
    async def subscribe(self, account_id: int, name: str, subscribed: bool) -> None:
        """Add or remove a name from the account's subscriptions, whether or not a mailbox
        has that name (RFC 9051 section 6.3.7); removing one that is not there is no error.
        CREATE, DELETE and RENAME never change subscriptions."""

    @abc.abstractmethod
    async def subscriptions(self, account_id: int) -> list[str]:
        """The subscribed names, sorted."""

    @abc.abstractmethod
    async def claim_recent(self, mailbox_id: int, up_to: int) -> int:
        """\\Recent (RFC 3501 section 2.3.2): claim for the calling session every message of
        the mailbox with a UID up to ``up_to`` that no session has claimed; returns the mark
        before, so the session's recent messages are those above it (none when it is
        ``up_to`` or more). Atomic: a message is claimed by one session only."""

    @abc.abstractmethod
    async def unclaimed_recent(self, mailbox_id: int) -> tuple[int, int]:
        """(the highest UID claimed so far, how many messages are above it): what an
        EXAMINE shows as \\Recent without claiming it, and STATUS RECENT counts."""

    @abc.abstractmethod
    async def mailbox_counts(self, mailbox_id: int) -> MailboxCounts: ...

    # -- messages ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        *,
        flags: frozenset[str] = frozenset(),
        internaldate: float | None = None,
    ) -> MessageInfo:
        """Add a message (IMAP APPEND). Raises QuotaExceeded or NotFound."""

    @abc.abstractmethod
    async def append_many(
        self, mailbox_id: int, messages: Sequence[NewMessage]
    ) -> list[MessageInfo]:
        """Add several messages in one transaction (IMAP MULTIAPPEND, RFC 3502): all of them,
        with consecutive UIDs in order, or none (QuotaExceeded, NotFound)."""

    @abc.abstractmethod
    async def deliver(
        self, data: bytes, deliveries: Sequence[LocalDelivery]
    ) -> list[DeliveryOutcome]:
        """Store one message for several local accounts in one transaction; a delivery that
        fails (quota) fails alone. Returns the outcome of each delivery, in order."""

    @abc.abstractmethod
    async def messages(self, mailbox_id: int) -> list[MessageInfo]:
        """Every message of a mailbox, by ascending UID."""

    @abc.abstractmethod
    async def structures(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, StoredMessage]:
        """Messages with their cached MIME structure, by UID (missing UIDs are left out)."""

    async def structures_matching(
        self, mailbox_id: int, uids: Sequence[int], terms: Sequence[str]
    ) -> dict[int, StoredMessage]:
        """Like ``structures``, but only the messages whose structure text (the MIME JSON)
        contains one of ``terms``, ASCII letters compared in any case (as SQL's LIKE does),
        other characters exactly: a cheap pre-filter for searching header values (IMAP
        SEARCH SUBJECT/FROM/...), whose caller then checks exactly. Backends may override
        this default."""
        lowered = [term.translate(_ASCII_LOWER) for term in terms]
        found = await self.structures(mailbox_id, uids)
        return {
            uid: stored
            for uid, stored in found.items()
            if any(term in stored.structure.translate(_ASCII_LOWER) for term in lowered)
        }

    @abc.abstractmethod
    async def sort_fields(self, blob_ids: Sequence[int]) -> dict[int, SortFields]:
        """What IMAP SORT and THREAD compare of each body (``mime.sortfields``), computed
        when it was stored; missing ids are left out."""

    @abc.abstractmethod
    async def sort_column(
        self, column: str, blob_ids: Sequence[int], mailbox_id: int | None = None
    ) -> dict[int, Any]:
        """One column of ``sort_fields`` (a SortFields attribute other than ``reply``,
        the ids and ``references``) by body id: what one SORT key needs, without building
        whole ``SortFields``; missing ids are left out. With ``mailbox_id`` (the mailbox
        of ``blob_ids``) the answer may hold the mailbox's other bodies too."""

    @abc.abstractmethod
    async def read_blobs(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        """The bodies of ``blob_ids`` by id; missing ones are left out. Reading a few small
        bodies (one message of a POP3 RETR or IMAP FETCH) should cost no more than the read
        itself: the SQLite backend reads them on the event loop, others in one round trip."""

    @abc.abstractmethod
    async def read_blob_range(self, blob_id: int, offset: int, length: int) -> bytes: ...

    async def read_blob_prefixes(self, lengths: dict[int, int]) -> dict[int, bytes]:
        """The first ``length`` bytes of each blob (``{blob id: length}``), in one read:
        the header blocks of many messages (IMAP ``BODY.PEEK[HEADER.FIELDS (...)]`` on a
        whole mailbox) without reading their bodies. Missing blobs are left out. Backends
        may override this default, which reads one range at a time."""
        out = {}
        for blob_id, length in lengths.items():
            try:
                out[blob_id] = await self.read_blob_range(blob_id, 0, length)
            except NotFound:
                continue
        return out

    @abc.abstractmethod
    async def update_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: frozenset[str],
        *,
        unchanged_since: int | None = None,
    ) -> FlagUpdate:
        """STORE: each changed message gets a new MODSEQ; with ``unchanged_since``, messages
        changed after it are left alone and reported as failed (RFC 7162)."""

    @abc.abstractmethod
    async def copy_messages(
        self, source_id: int, uids: Sequence[int], target_id: int
    ) -> list[tuple[int, int]]:
        """Copy, keeping flags and internal dates; returns (source UID, new UID) pairs.
        Raises QuotaExceeded."""

    @abc.abstractmethod
    async def move_messages(
        self, source_id: int, uids: Sequence[int], target_id: int
    ) -> list[tuple[int, int]]:
        """Copy then expunge from the source, atomically (RFC 6851)."""

    @abc.abstractmethod
    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove the messages flagged \\Deleted (only those among ``uids`` when given);
        returns the expunged UIDs."""

    async def remove_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        """Remove these messages whatever their flags, all in one transaction (POP3's UPDATE
        state, RFC 1939 section 6); IMAP sessions see them expunged. UIDs no longer there
        are passed over; returns the UIDs removed. Backends override this default, which
        takes two transactions."""
        await self.update_flags(mailbox_id, uids, "add", frozenset({"\\Deleted"}))
        return await self.expunge(mailbox_id, uids)

    @abc.abstractmethod
    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges: ...

    # -- Sieve scripts ----------------------------------------------------------------------

    @abc.abstractmethod
    async def list_scripts(self, account_id: int) -> list[SieveScript]: ...

    @abc.abstractmethod
    async def get_script(self, account_id: int, name: str) -> SieveScript | None: ...

    @abc.abstractmethod
    async def put_script(self, account_id: int, name: str, body: str) -> None:
        """Create or replace a script (its active state is kept)."""

    @abc.abstractmethod
    async def delete_script(self, account_id: int, name: str) -> None:
        """Raises NotFound, or StoreError for the active script."""

    @abc.abstractmethod
    async def rename_script(self, account_id: int, old: str, new: str) -> None:
        """Raises NotFound or AlreadyExists."""

    @abc.abstractmethod
    async def set_active_script(self, account_id: int, name: str | None) -> None:
        """Make ``name`` the only active script, or deactivate all with None."""

    @abc.abstractmethod
    async def active_script(self, account_id: int) -> SieveScript | None: ...

    # The administrator's global scripts (RFC 6609 include :global): one namespace for the
    # server, never active, only included.

    @abc.abstractmethod
    async def list_global_scripts(self) -> list[SieveScript]: ...

    @abc.abstractmethod
    async def get_global_script(self, name: str) -> SieveScript | None: ...

    @abc.abstractmethod
    async def put_global_script(self, name: str, body: str) -> None:
        """Create or replace a global script."""

    @abc.abstractmethod
    async def delete_global_script(self, name: str) -> None:
        """Raises NotFound."""

    @abc.abstractmethod
    async def claim_vacation_reply(
        self, account_id: int, sender: str, handle: str, period: float
    ) -> bool:
        """Sieve vacation (RFC 5230 4.2): True, and recorded, when no reply with ``handle``
        went to ``sender`` (case-insensitive) within the last ``period`` seconds; False
        otherwise. Atomic: of two concurrent claims, one wins. Expired records are purged."""

    # -- the junk classifier (stalwart_py.junk) ---------------------------------------------

    @abc.abstractmethod
    async def junk_counts(self, account_id: int, tokens: Sequence[str]) -> JunkCounts:
        """The account's trained message counts, and the counts of those ``tokens`` it has."""

    @abc.abstractmethod
    async def junk_trained_as(self, account_id: int, blob_ids: Sequence[int]) -> dict[int, bool]:
        """Of these message bodies, those the account trained on: True as junk, False as not."""

    @abc.abstractmethod
    async def junk_train_many(
        self,
        account_id: int,
        lessons: Sequence[tuple[int, bool, Sequence[str]]],
        *,
        max_tokens: int,
    ) -> list[str]:
        """Train the account on messages, each (body id, junk or not, its tokens), in one
        transaction; for each: ``"trained"``, ``"retrained"`` (it was trained as the other
        class, which it leaves), ``"unchanged"`` (already trained so) or ``"gone"`` (no such
        body). Keeps at most ``max_tokens`` tokens, pruning the rarest."""

    async def junk_train(
        self, account_id: int, blob_id: int, junk: bool, tokens: Sequence[str], *, max_tokens: int
    ) -> str:
        """``junk_train_many`` for one message."""
        (outcome,) = await self.junk_train_many(
            account_id, [(blob_id, junk, tokens)], max_tokens=max_tokens
        )
        return outcome

    @abc.abstractmethod
    async def duplicate_seen(self, account_id: int, key: str) -> bool:
        """Sieve duplicate (RFC 7352): was ``key`` (a hash of the handle and unique ID)
        recorded for this account by an earlier run, and is its entry still live?"""

    @abc.abstractmethod
    async def record_duplicates(
        self, account_id: int, entries: Sequence[tuple[str, float, bool]]
    ) -> None:
        """Record (key, seconds, last) after a successful run (RFC 7352 section 3): a new or
        expired key lives ``seconds`` from now; a live one keeps its expiry unless ``last``
        (":last": measured from the latest run). Expired entries are purged and an account
        keeps at most ``MAX_DUPLICATES`` entries, the oldest dropped first."""

    # -- outbound queue and reports ---------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(self, data: bytes, message: OutboundMessage) -> int: ...

    @abc.abstractmethod
    async def queue_entries(
        self, *, due_before: float | None = None, limit: int = 1000, offset: int = 0
    ) -> list[QueueEntry]:
        """Queued messages with pending recipients (only those with a recipient due before
        ``due_before`` when given), oldest first, from the ``offset``-th (a page of a list)."""

    @abc.abstractmethod
    async def queue_entry(self, queue_id: int) -> QueueEntry | None: ...

    def cluster_lease(self, name: str) -> Lease | None:
        """A lease held by one process of all nodes on this store (``run_singleton``); None:
        the store is one node's, whose file lease is the cluster's."""
        return None

    # Whether several nodes' queue runners share this store (PostgreSQL: every node runs its
    # queue); otherwise the queue runs in one process at a time (``singleton.py``).
    shared_queue = False

    # Whether failed logins are counted here too, for every node (PostgreSQL:
    # ``pg_login_failures``); otherwise the machine's shared table (``throttle.py``) is all.
    shares_login_failures = False

    # Whether SMTP rate buckets are kept here, for every node (PostgreSQL: ``pg_rates``);
    # otherwise the machine's shared table (``inbound/rate.py``) is all.
    shares_rates = False

    async def take_rate_token(self, key: bytes, limit: int, now: float) -> float:
        """Take a token from the bucket ``key`` (``limit`` a minute, wall-clock ``now``): 0.0
        when taken, else the seconds until one will be there (nothing is taken)."""
        return 0.0

    async def record_login_failures(self, keys: Sequence[bytes], at: float, horizon: float) -> None:
        """Count a failure at ``at`` (wall-clock seconds) for each key; failures at or before
        ``horizon`` may be forgotten meanwhile."""

    async def login_failures(self, keys: Sequence[bytes], since: float) -> dict[bytes, list[float]]:
        """Each key's failures after ``since``, oldest first (keys without any: absent)."""
        return {}

    async def forget_login_failures(self, key: bytes) -> None:
        """A success: the key's failures are forgotten."""

    @abc.abstractmethod
    async def lease_queue_entries(
        self, owner: str, now: float, lease_time: float, limit: int = 1000
    ) -> tuple[list[QueueEntry], frozenset[int]]:
        """Lease to ``owner`` until ``now + lease_time`` up to ``limit`` recipients pending,
        due and not leased (or lapsed); their messages and the ids leased (``sqlite_queue``)."""

    @abc.abstractmethod
    async def renew_queue_leases(self, owner: str, ids: Sequence[int], until: float | None) -> int:
        """Extend ``owner``'s leases of the recipients ``ids`` to ``until``, or end them
        (None); returns how many it held."""

    @abc.abstractmethod
    async def release_queue_leases(self, owner: str | None = None) -> int:
        """End ``owner``'s leases (a runner that stops), or every one (None: the only
        runner of an unshared store, at its start)."""

    async def queue_size(self) -> tuple[int, int]:
        """(messages, pending recipients) in the outbound queue, for metrics. Backends
        override this with a count; the default counts a listing."""
        entries = await self.queue_entries(limit=1_000_000)
        pending = sum(1 for e in entries for r in e.recipients if r.status == "pending")
        return len(entries), pending

    @abc.abstractmethod
    async def update_queue_recipients(
        self,
        queue_id: int,
        updates: Sequence[RecipientUpdate],
        *,
        notification: tuple[bytes, OutboundMessage] | None = None,
    ) -> None:
        """Record delivery attempts; a message with no pending recipient left is removed.
        ``notification`` (a DSN about these attempts) is queued in the same transaction, and
        only while the message is still queued (``queue delete`` may have removed it)."""

    @abc.abstractmethod
    async def delete_queue_entry(self, queue_id: int) -> None:
        """Raises NotFound."""

    @abc.abstractmethod
    async def retry_queue(self, queue_id: int | None = None) -> int:
        """Make pending recipients (of one message, or all) due now; returns how many."""

    @abc.abstractmethod
    async def add_report(
        self, kind: str, domain: str, mail_from: str, summary: str, data: bytes
    ) -> int: ...

    @abc.abstractmethod
    async def list_reports(self, limit: int = 100) -> list[Report]: ...

    # -- outbound TLS: MTA-STS policies of destinations, TLS-RPT counts -------------------

    @abc.abstractmethod
    async def get_sts_policy(self, domain: str) -> CachedStsPolicy | None:
        """The cached MTA-STS policy of ``domain`` (expired or not), if any."""

    @abc.abstractmethod
    async def put_sts_policy(self, policy: CachedStsPolicy, *, keep: int, now: float) -> None:
        """Cache ``policy``; expired ones are dropped, and all but the ``keep`` most
        recently fetched."""

    @abc.abstractmethod
    async def count_tls_results(self, counts: Sequence[TlsResultCount]) -> None:
        """Add these counts to the day's (same day, domain, policy, failure: summed)."""

    @abc.abstractmethod
    async def tls_results(self, day: str) -> list[TlsResultCount]: ...

    @abc.abstractmethod
    async def tls_result_days(self) -> list[str]:
        """The days that have counts, oldest first."""

    @abc.abstractmethod
    async def delete_tls_results(self, day: str, domain: str | None = None) -> None:
        """Forget one domain's counts of ``day`` (its report was sent), or, without a
        domain, every count of ``day`` and earlier."""
