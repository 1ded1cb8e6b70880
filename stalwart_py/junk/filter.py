"""``JunkFilter``: classification at delivery and training from the users' IMAP actions.

Classification (``classify``), for each account a checked message is delivered to: the
message's tokens (``tokens.py``) are looked up in the account's counts (one indexed read),
scored (``bayes.py``) and turned into the ``X-Spam-Status`` fields (``headers.py``). An
account that has not yet trained on ``min-junk`` junk and ``min-not-junk`` other messages
gets no score ("not enough training") and nothing is filed. A message scoring
``junk-threshold`` or more is junk: the delivery pipeline files what the account's Sieve
script keeps in INBOX into the Junk mailbox with ``$Junk`` instead, as for a DMARC
quarantine (``stalwart_py/inbound/junk.py``); a script that files it elsewhere itself, or
discards it, wins.

Training (``trained_by_move``, ``trained_by_flags``), as a user's mail client does it:

* moving or copying a message into the account's ``\\Junk`` mailbox, or setting ``$Junk``
  on it, trains it as junk;
* moving it out of Junk into any mailbox but Junk and ``\\Trash`` (deleting junk says
  nothing about it), or setting ``$NotJunk``, trains it as not junk.

What each message was trained as is remembered (by its body's hash), so moving it back and
forth trains it once and moving it the other way flips it. The IMAP command only queues the
work (a few dictionary operations) and answers at once; the worker (``run``, a task of the
server's task group, so it has an owner and stops with the server) reads each message,
tokenises it in a worker thread (never on the event loop) and writes the counts in one
store transaction. The queue is bounded (``MAX_PENDING`` messages): past it, training
requests are dropped with a warning rather than let memory grow. Work still queued when the
server stops is lost (the user's mailboxes are unchanged; only that lesson is missed).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio

from stalwart_py.config.junk import ClassifierSettings
from stalwart_py.junk.bayes import classify as bayes_classify
from stalwart_py.junk.headers import status_fields, strip_fields
from stalwart_py.store import Store
from stalwart_py.store.model import JunkCounts

log = logging.getLogger("stalwart_py.junk")

JUNK = "$Junk"
NOT_JUNK = "$NotJunk"
JUNK_USE = "\\Junk"
TRASH_USE = "\\Trash"
MAX_PENDING = 100_000  # messages waiting to be trained, over all accounts
BATCH = 256  # messages trained in one transaction at most
LINGER = 0.2  # seconds the worker lets training requests gather before it starts
INLINE_TOKENIZE = 16 * 1024  # smaller messages are tokenised on the loop: cheaper than a hop


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the classifier said of one message for one account."""

    score: float | None  # None: not classified (not enough training)
    junk: bool  # to be filed into Junk (judged junk, and file-junk is on)
    fields: bytes  # the header fields to add


class JunkFilter:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], ClassifierSettings],
        hostname: Callable[[], str],
    ) -> None:
        self.store = store
        self.settings = settings
        self.hostname = hostname
        self._pending: deque[tuple[int, int, bool]] = deque()  # (account, blob id, junk)
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self.trained = 0  # messages trained or retrained, for tests and metrics
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.settings().enable

    # -- classification -----------------------------------------------------------------

    async def classify(self, account_id: int, message: bytes) -> Verdict:
        """Score ``message`` (as it will be stored, our fields not yet added)."""
        settings = self.settings()

        def trained(counts: JunkCounts) -> bool:
            return counts.spam >= settings.min_junk and counts.ham >= settings.min_not_junk

        # An account not trained enough gets no score whatever the message says: its totals
        # (a point lookup) decide that before the message is tokenised, the dearest step of
        # an intake while an account has too few lessons.
        counts = await self.store.junk_counts(account_id, ())
        if trained(counts):
            tokens = await self._tokens(message)
            counts = await self.store.junk_counts(account_id, sorted(tokens))
            if trained(counts):  # still: a reset may have come between the two reads
                score = bayes_classify(tokens, counts.tokens, counts.ham, counts.spam).probability
                # 0.995 shows as 1.00: the verdict is taken on the printed score, so that a
                # Sieve script comparing the header (spamtest) and the filing never disagree.
                score = math.floor(score * 100 + 0.5) / 100
                junk = score >= settings.junk_threshold
                totals = (counts.ham, counts.spam)
                fields = status_fields(score, junk, settings.junk_threshold, totals)
                return Verdict(score, junk and settings.file_junk, fields)
        fields = status_fields(None, False, settings.junk_threshold, (counts.ham, counts.spam))
        return Verdict(None, False, fields)

    async def _tokens(self, message: bytes) -> frozenset[str]:
        # The tokenizer (with the Sieve message view and HTML handling under it) loads with
        # the first message classified or trained on, not at every start.
        from stalwart_py.junk.tokens import tokenize

        hostname = self.hostname()
        if len(message) <= INLINE_TOKENIZE:
            return tokenize(message, hostname)
        return await anyio.to_thread.run_sync(tokenize, message, hostname)

    @staticmethod
    def strip(message: bytes) -> bytes:
        """``message`` without X-Spam-* fields a sender put there (see ``headers.py``)."""
        return strip_fields(message)

    # -- training -------------------------------------------------------------------------

    def trained_by_move(
        self,
        account_id: int,
        source_use: str | None,
        target_use: str | None,
        blob_ids: Iterable[int],
    ) -> None:
        """A COPY or MOVE of messages (their bodies' ids) between mailboxes with these
        special uses."""
        if target_use == JUNK_USE and source_use != JUNK_USE:
            self._queue(account_id, blob_ids, True)
        elif source_use == JUNK_USE and target_use not in (JUNK_USE, TRASH_USE):
            self._queue(account_id, blob_ids, False)

    def trained_by_flags(
        self, account_id: int, mode: str, flags: frozenset[str], blob_ids: Iterable[int]
    ) -> None:
        """A STORE that changed messages: ``+FLAGS``/``FLAGS`` with ``$Junk`` or
        ``$NotJunk`` (keywords compare case-insensitively, RFC 9051 2.3.2)."""
        if mode == "remove":
            return
        lowered = {flag.lower() for flag in flags}
        junk, not_junk = JUNK.lower() in lowered, NOT_JUNK.lower() in lowered
        if junk != not_junk:  # both at once says nothing
            self._queue(account_id, blob_ids, junk)

    def _queue(self, account_id: int, blob_ids: Iterable[int], junk: bool) -> None:
        if not self.enabled:
            return
        for blob_id in dict.fromkeys(blob_ids):
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                log.warning("junk training queue full: a message was not trained")
                continue
            self._pending.append((account_id, blob_id, junk))
        if self._pending:
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
            self._wake.set()

    async def settled(self) -> None:
        """Until every queued training is done (for tests and a clean stop)."""
        await self._idle.wait()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The training worker, until cancelled."""
        task_status.started()
        while True:
            if not self._pending:
                self._idle.set()
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            # A client marking many messages sends a command each: let them gather for a
            # moment, to train them in one transaction rather than compete with each command.
            await anyio.sleep(LINGER)
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            try:
                await self._train(batch)
            except Exception:  # the store: the lesson is lost, the worker goes on
                log.exception("junk training failed for %d messages", len(batch))

    async def _train(self, batch: Sequence[tuple[int, int, bool]]) -> None:
        settings = self.settings()
        by_account: dict[int, list[tuple[int, bool]]] = {}
        for account_id, blob_id, junk in batch:
            by_account.setdefault(account_id, []).append((blob_id, junk))
        for account_id, items in by_account.items():
            known = await self.store.junk_trained_as(account_id, [b for b, _ in items])
            todo = [(b, junk) for b, junk in items if known.get(b) != junk]
            if not todo:
                continue
            bodies = await self.store.read_blobs([b for b, _ in todo])
            todo = [(b, junk) for b, junk in todo if b in bodies]  # else expunged meanwhile
            # one thread hop and one transaction (one fsync) for the whole batch
            prepared = await anyio.to_thread.run_sync(_lessons, todo, bodies, self.hostname())
            outcomes = await self.store.junk_train_many(
                account_id, prepared, max_tokens=settings.max_tokens
            )
            done = sum(outcome in ("trained", "retrained") for outcome in outcomes)
            self.trained += done
            log.debug("account %d: trained on %d messages", account_id, done)


def _lessons(
    todo: list[tuple[int, bool]], bodies: dict[int, bytes], hostname: str
) -> list[tuple[int, bool, list[str]]]:
    """(body id, junk, tokens) of each message to train on (in a worker thread)."""
    from stalwart_py.junk.tokens import tokenize

    return [(blob_id, junk, sorted(tokenize(bodies[blob_id], hostname))) for blob_id, junk in todo]
