"""The deferred spool (KumoMTA's ``deferred_spool``): mail held in memory until it first fails.

A listener with ``smtp.deferred-spool = true`` hands the remote part of each message to the
running queue (``QueueManager.spool``) instead of writing it to the store's queue; the queue
tries it at once, from memory. Then, for the recipients at each destination:

* delivered, or failed for good: nothing of the message is ever written; only the DSN the
  outcome calls for (NOTIFY) is queued, durably, as for any queued message;
* deferred (a 4xx, no connection, a timeout): they are written to the durable queue with the
  attempt counted, its error, and the next attempt time from ``queue.retry``; from then on
  they are ordinary queued mail.

A message's destinations settle independently: one deferred at two domains becomes two queue
entries (sharing one stored body, blobs being content-addressed).

The price, stated in the README next to the setting: the client was told 250 while the
message was only in this process's memory, so a crash (kill -9, an out-of-memory kill, power
loss) loses it. A graceful stop does not: ``persist_all`` writes what is still held to the
durable queue, due at once, before the store closes. A message whose attempt the stop cut
short may then be delivered twice, as after a crash of the durable queue.

Memory is bounded (``MAX_MESSAGES``, ``MAX_BYTES``); past either, messages are queued durably
as usual. A write that fails (a full disk) is kept and tried again at every queue scan and at
the stop, never dropped while the process lives.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import anyio

from stalwart_py.metrics import Metrics
from stalwart_py.store import (
    OutboundMessage,
    QueuedRecipient,
    QueueEntry,
    QueueRecipientState,
    RecipientUpdate,
    Store,
)

log = logging.getLogger("stalwart_py.queue.spool")

MAX_MESSAGES = 10_000  # held in memory at once; more go to the durable queue
MAX_BYTES = 256 * 1024 * 1024  # of message data held in memory at once


@dataclass(frozen=True, slots=True)
class Write:
    """One ``store.enqueue`` to make: a message held here (``held``), or a DSN."""

    data: bytes
    message: OutboundMessage
    held: bool = True


@dataclass(eq=False)
class SpooledMessage:
    """A message held in memory. ``entry`` is what the queue's workers expect of a queued
    message, with negative ids (the store's are positive) and no blob."""

    entry: QueueEntry
    data: bytes
    open: set[int]  # recipient ids not yet delivered, failed, or written down


class MemorySpool:
    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.messages: dict[int, SpooledMessage] = {}
        self.size = 0  # bytes of ``messages``
        # Writes the store refused (a full disk), tried again at every scan and at the stop.
        self._ids = itertools.count(1)
        self._unwritten: list[Write] = []
        self._events = metrics.counter(
            "stalwart_queue_deferred_spool",
            "Messages of the deferred spool: held in memory, declined (memory full: queued"
            " durably), written to the durable queue (deferred, or at a stop)",
            ["event"],
        )
        self._held = metrics.gauge(
            "stalwart_queue_memory_messages", "Messages held in memory by the deferred spool"
        )

    def admit(self, data: bytes, message: OutboundMessage, now: float) -> SpooledMessage | None:
        """Hold ``message``; None when memory is full (the caller queues it durably). Writes
        still waiting for the store count against the limits too."""
        held = len(self.messages) + len(self._unwritten)
        size = self.size + sum(len(write.data) for write in self._unwritten) + len(data)
        if held >= MAX_MESSAGES or size > MAX_BYTES:
            self._events.labels("declined").inc()
            return None
        recipients = tuple(
            QueueRecipientState(
                id=-next(self._ids),
                address=r.address,
                domain=r.address.rpartition("@")[2].lower(),
                orcpt=r.orcpt,
                notify=r.notify,
                status="pending",
                attempts=0,
                next_attempt=now,
                last_error=None,
            )
            for r in message.recipients
        )
        entry = QueueEntry(
            id=-next(self._ids),
            mail_from=message.mail_from,
            created=now,
            next_attempt=now,
            attempts=0,
            ret=message.ret,
            envid=message.envid,
            source=message.source,
            size=len(data),
            blob_id=0,
            smtputf8=message.smtputf8,
            recipients=recipients,
        )
        spooled = SpooledMessage(entry, data, {r.id for r in recipients})
        self.messages[entry.id] = spooled
        self.size += len(data)
        self._events.labels("held").inc()
        self._held.set(len(self.messages))
        return spooled

    async def settle(
        self,
        spooled: SpooledMessage,
        recipients: Sequence[QueueRecipientState],
        updates: Sequence[RecipientUpdate],
        dsn: tuple[bytes, OutboundMessage] | None,
    ) -> None:
        """One attempt's outcome for ``recipients``: the deferred ones are written to the
        durable queue as tried once more, and the DSN is queued."""
        by_id = {r.id: r for r in recipients}
        deferred = [
            QueuedRecipient(
                by_id[u.id].address,
                by_id[u.id].orcpt,
                by_id[u.id].notify,
                attempts=by_id[u.id].attempts + 1,
                next_attempt=u.next_attempt,
                last_error=u.last_error,
            )
            for u in updates
            if u.status == "pending" and u.id in spooled.open
        ]
        writes = [Write(spooled.data, _outbound(spooled, deferred))] if deferred else []
        if dsn is not None:
            writes.append(Write(*dsn, held=False))
        self._close(spooled, by_id)
        await self._write(writes)

    async def persist(
        self, spooled: SpooledMessage, recipients: Sequence[QueueRecipientState], now: float
    ) -> None:
        """Write ``recipients`` (those still open) to the durable queue as they are, due at
        once: for an attempt that ended without an outcome, and at a stop."""
        still = [r for r in recipients if r.id in spooled.open]
        self._close(spooled, {r.id for r in recipients})
        if still:
            await self._write([Write(spooled.data, _outbound(spooled, _as_queued(still, now)))])

    async def persist_all(self, now: float) -> None:
        """At a stop: everything still held, and every write that failed, to the store."""
        writes = []
        for spooled in list(self.messages.values()):
            still = [r for r in spooled.entry.recipients if r.id in spooled.open]
            writes.append(Write(spooled.data, _outbound(spooled, _as_queued(still, now))))
            self._close(spooled, spooled.open.copy())
        writes += self._take_unwritten()
        if not writes:
            return
        await self._write(writes)
        if self._unwritten:
            log.error(
                "deferred spool: %d message(s) held in memory could not be written to the"
                " queue and are lost",
                len(self._unwritten),
            )
        else:
            log.info("deferred spool: wrote %d message(s) held in memory to the queue", len(writes))

    async def retry_unwritten(self) -> None:
        if self._unwritten:
            await self._write(self._take_unwritten())

    def _take_unwritten(self) -> list[Write]:
        writes, self._unwritten = self._unwritten, []
        return writes

    def _close(self, spooled: SpooledMessage, ids: Iterable[int]) -> None:
        spooled.open.difference_update(ids)
        if not spooled.open and self.messages.pop(spooled.entry.id, None) is not None:
            self.size -= len(spooled.data)
            self._held.set(len(self.messages))

    async def _write(self, writes: list[Write]) -> None:
        """Every write, concurrently (the store commits them together); one that fails is
        kept for ``retry_unwritten``. Shielded: a stop does not cut a write in half-known."""

        async def one(write: Write) -> None:
            try:
                await self.store.enqueue(write.data, write.message)
            except Exception as exc:
                log.error(
                    "deferred spool: cannot queue a message from <%s> (%s); trying again later",
                    write.message.mail_from,
                    exc,
                )
                self._unwritten.append(write)
            else:
                if write.held:
                    self._events.labels("written").inc()

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for write in writes:
                    group.start_soon(one, write)


def _as_queued(recipients: Sequence[QueueRecipientState], now: float) -> list[QueuedRecipient]:
    return [
        QueuedRecipient(
            r.address, r.orcpt, r.notify, attempts=r.attempts, next_attempt=now, last_error=None
        )
        for r in recipients
    ]


def _outbound(spooled: SpooledMessage, recipients: Sequence[QueuedRecipient]) -> OutboundMessage:
    entry = spooled.entry
    return OutboundMessage(
        entry.mail_from,
        tuple(recipients),
        entry.ret,
        entry.envid,
        entry.source,
        entry.smtputf8,
        created=entry.created,  # queue.max-age counts from the arrival
    )
