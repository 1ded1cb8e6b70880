"""The one delivery pipeline: SMTP, LMTP and HTTP injection all end here.

For one message and its envelope:

1. A ``Received:`` trace header is prepended (RFC 5321 4.4; the ``with`` keyword from the
   RFC 3848 registry), naming the recipient when there is only one.
2. Each recipient is resolved by the directory: local accounts (aliases, catch-all and
   subaddresses followed), forwards to remote addresses, or a remote domain.
3. For each local account, once however many recipients lead to it, the message filter
   (the account's Sieve script, when one is plugged in) decides: keep in INBOX, file into
   mailboxes, redirect, reject, or send replies. Without a filter every message is kept.
4. Local copies get ``Return-Path:`` (final delivery, RFC 5321 4.4) and are stored in one
   transaction; remote recipients, forwards and redirects go to the outbound queue with the
   message as received plus the trace header.

A message that already carries ``MAX_HOPS`` ``Received:`` fields is refused for every
recipient (``554 5.4.6``) before anything else: it is going round in a loop (RFC 5321 6.3:
count the trace fields, with a threshold of at least 100), such as two aliases forwarding to
each other across servers.

A recipient's result is a success only once what it depends on is durable in the store or
the queue. Results are per recipient: LMTP answers each; SMTP answers the transaction as a
whole and turns per-recipient failures into bounces later.

The one exception is asked for by the caller: ``deliver(..., deferred_spool=True)`` (an SMTP
listener with ``smtp.deferred-spool``) hands the part for the outbound queue to the running
queue in memory (``MemoryQueue.spool``) instead of the store; it is written to the store only
once it fails transiently (``stalwart_py/queue/spool.py``). Local copies are durable as
always. When the queue cannot take it, the message is queued durably as usual.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from stalwart_py.connection import Address, TLSInfo
from stalwart_py.directory import Directory, Resolution
from stalwart_py.inbound.junk import junk_mailbox, quarantined
from stalwart_py.metrics import Metrics
from stalwart_py.mime import date_now
from stalwart_py.mime.headers import scan_header
from stalwart_py.store import (
    Account,
    LocalDelivery,
    OutboundMessage,
    QueuedRecipient,
    QuotaExceeded,
    Store,
    StoreError,
)

log = logging.getLogger("stalwart_py.delivery")

MAX_HOPS = 100  # Received fields a message may already carry (RFC 5321 6.3: at least 100)
_RECEIVED_FIELD = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_RETURN_PATH = re.compile(rb"Return-Path:[^\r\n]*\r?\n")  # what local copies start with


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    orcpt: str | None = None  # RFC 3461 ORCPT, "rfc822;addr"
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY
    # What the directory answered when the caller checked the address (SMTP at RCPT time),
    # so that the pipeline does not ask again moments later.
    resolution: Resolution | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str  # "" is the null sender (bounces)
    recipients: tuple[Recipient, ...]
    ret: str | None = None  # RFC 3461 RET: FULL or HDRS
    envid: str | None = None  # RFC 3461 ENVID
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from, for the trace header and the logs."""

    protocol: str  # RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP, ..., or HTTP
    session_id: str
    helo: str | None = None
    peer: Address | None = None
    tls: TLSInfo | None = None
    authenticated: str | None = None  # the account that submitted it
    source: str = "smtp"  # for the queue: smtp, lmtp, http
    by: str | None = None  # the name the receiving listener gives itself; None: the server's
    # Why the intake checks want it in Junk (a DMARC p=quarantine, a DNSBL with action
    # "junk"); None: not quarantined. See stalwart_py/inbound/junk.py.
    quarantine: str | None = None


@dataclass(frozen=True, slots=True)
class RecipientResult:
    address: str
    code: int  # SMTP reply code
    enhanced: str  # RFC 3463 status code
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


# -- filtering ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileInto:
    mailbox: str = "INBOX"
    flags: frozenset[str] = frozenset()
    create: bool = False  # create the mailbox if it does not exist (else INBOX is used)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A new message a filter sends (a vacation reply, a notification)."""

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Disposition:
    """What a filter decided for one local account. No ``file`` and no ``redirect`` is a
    discard; ``reject`` refuses the message for this account with that reason."""

    file: tuple[FileInto, ...] = (FileInto(),)
    redirect: tuple[str, ...] = ()
    reject: str | None = None
    outgoing: tuple[Outgoing, ...] = ()
    message: bytes | None = None  # the filter edited the message (Sieve editheader): this copy
    # what the filter keeps once this account's copy is delivered (Sieve duplicate, RFC 7352 3:
    # a failed delivery that is retried must not then look like a duplicate)
    on_delivered: Callable[[], Awaitable[None]] | None = None


KEEP = Disposition()


class MemoryQueue(Protocol):
    """The running outbound queue, as the deferred spool hands messages to it."""

    async def spool(self, data: bytes, message: OutboundMessage) -> bool:
        """Hold ``message`` in memory and deliver it now; False when it cannot (then the
        caller queues it durably)."""
        ...


class JunkClassifier(Protocol):
    """The junk filter that learns (``stalwart_py.junk.filter.JunkFilter``)."""

    @property
    def enabled(self) -> bool: ...

    def strip(self, message: bytes) -> bytes:
        """``message`` without the verdict fields a sender may have forged."""
        ...

    async def classify(self, account_id: int, message: bytes) -> Verdict: ...


class Verdict(Protocol):
    fields: bytes  # the X-Spam-* header fields to add to this account's copy
    junk: bool


class MessageFilter(Protocol):
    async def evaluate(
        self, account: Account, envelope: Envelope, recipient: str, message: bytes
    ) -> Disposition:
        """Decide for one account; an error inside must fall back to KEEP, not raise."""
        ...


# -- trace headers --------------------------------------------------------------------------


def received_header(origin: Origin, hostname: str, recipients: tuple[Recipient, ...]) -> bytes:
    """RFC 5321 4.4 ``Received:``, folded, ending in CRLF."""
    source = origin.helo or "unknown"
    if origin.peer is not None and origin.peer.ip is not None:
        literal = f"IPv6:{origin.peer.host}" if origin.peer.ip.version == 6 else origin.peer.host
        source += f" ([{literal}])"
    lines = [f"Received: from {source}"]
    if origin.tls is not None:
        lines.append(f"(using {origin.tls.version} with cipher {origin.tls.cipher})")
    if origin.authenticated:
        lines.append(f"(authenticated sender: {origin.authenticated})")
    lines.append(f"by {hostname} (stalwart-py) with {origin.protocol} id {origin.session_id}")
    if len(recipients) == 1:
        lines.append(f"for <{recipients[0].address}>")
    lines[-1] += "; " + date_now()
    return ("\r\n\t".join(lines) + "\r\n").encode()


def hop_count(message: bytes) -> int:
    """The ``Received:`` fields in the message's header block (RFC 5321 6.3)."""
    length, _ = scan_header(message, 0, len(message))
    return len(_RECEIVED_FIELD.findall(message, 0, length))


def return_path_header(mail_from: str) -> bytes:
    return f"Return-Path: <{mail_from}>\r\n".encode()


# -- the pipeline -------------------------------------------------------------------------


@dataclass
class _Plan:
    """Where each recipient (by index) goes."""

    results: dict[int, RecipientResult] = field(default_factory=dict)
    local: dict[int, tuple[Account, list[int]]] = field(default_factory=dict)
    remote: list[tuple[int, QueuedRecipient]] = field(default_factory=list)

    def settle(self, index: int, result: RecipientResult) -> None:
        """Add the result of one copy to recipient ``index``'s. A recipient that expanded to
        several copies (an alias to a local account and a remote address, a filter that
        keeps and redirects) succeeds only when every copy did; otherwise it gets the
        failure, a temporary one before a permanent one so that the sender tries again. A
        retry may repeat the copies that had succeeded: a duplicate rather than a loss."""
        current = self.results.get(index)
        if current is None or _severity(result) > _severity(current):
            self.results[index] = result


def _severity(result: RecipientResult) -> int:
    """Which of a recipient's results it is answered with: the highest."""
    if result.ok:
        return 0
    return 1 if result.permanent else 2


class Delivery:
    def __init__(
        self,
        store: Store,
        directory: Directory,
        hostname: Callable[[], str],
        *,
        metrics: Metrics | None = None,
        message_filter: MessageFilter | None = None,
        memory_queue: Callable[[], MemoryQueue | None] | None = None,
        junk: JunkClassifier | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.hostname = hostname
        self.message_filter = message_filter
        self.junk = junk
        # The queue that takes deferred-spool messages, when one runs (the server's).
        self.memory_queue = memory_queue or (lambda: None)
        self._metrics = metrics
        self._counter = (
            metrics.counter(
                "stalwart_deliveries", "Recipients handled by the delivery pipeline", ["result"]
            )
            if metrics is not None
            else None
        )

    async def deliver(
        self,
        envelope: Envelope,
        message: bytes,
        origin: Origin,
        *,
        deferred_spool: bool = False,
    ) -> list[RecipientResult]:
        """Deliver ``message`` to every recipient; one result per recipient, in order.
        ``deferred_spool``: remote recipients to the running queue in memory (see above)."""
        if (hops := hop_count(message)) >= MAX_HOPS:
            log.warning(
                "session %s: refused a message from <%s> with %d Received fields (a mail loop)",
                origin.session_id,
                envelope.mail_from,
                hops,
            )
            results = [
                RecipientResult(r.address, 554, "5.4.6", f"Too many hops ({hops}): a mail loop")
                for r in envelope.recipients
            ]
            self._count(results)
            return results
        plan = await self._plan(envelope)
        trace = received_header(origin, origin.by or self.hostname(), envelope.recipients)
        # Mail that is not submission is scored per account by the junk filter, after losing
        # any verdict a sender wrote into it (stalwart_py/junk/headers.py).
        scored = self.junk is not None and self.junk.enabled and origin.authenticated is None
        body = self.junk.strip(message) if scored and self.junk is not None else message
        local_head = return_path_header(envelope.mail_from) + trace
        local_data = local_head + body
        remote_data = trace + message
        deliveries: list[LocalDelivery] = []
        copies: list[bytes] = []  # what each delivery stores: the verdict differs per account
        owners: list[int] = []
        redirects: list[QueuedRecipient] = []
        redirecting: set[int] = set()  # accounts whose filter redirected the message
        rejected: set[int] = set()
        outgoing: list[Outgoing] = []
        edited: list[tuple[int, str, Disposition]] = []  # accounts whose copy differs
        delivered_hooks: dict[int, Callable[[], Awaitable[None]]] = {}
        for account_id, (account, indexes) in plan.local.items():
            recipient = envelope.recipients[indexes[0]].address
            data, junk = local_data, False
            if scored:
                data, junk = await self._classify(account, local_head, body, local_data)
            disposition = await self._filter(account, envelope, recipient, data)
            if origin.quarantine is not None:
                disposition = await self._quarantine(account, disposition, origin)
            elif junk:
                disposition = await self._quarantine(account, disposition, origin, "junk filter")
            if disposition.reject is not None:
                rejected.add(account_id)
                for index in indexes:
                    plan.settle(
                        index,
                        RecipientResult(
                            envelope.recipients[index].address, 550, "5.7.1", disposition.reject
                        ),
                    )
                continue
            if disposition.on_delivered is not None:
                delivered_hooks[account_id] = disposition.on_delivered
            if disposition.message is not None:
                edited.append((account_id, recipient, disposition))
                outgoing += disposition.outgoing
                continue
            for target in disposition.file:
                deliveries.append(
                    LocalDelivery(account_id, target.mailbox, target.flags, target.create)
                )
                copies.append(data)
                owners.append(account_id)
            if disposition.redirect:
                redirecting.add(account_id)
            redirects += [
                QueuedRecipient(address, f"rfc822;{recipient}") for address in disposition.redirect
            ]
            outgoing += disposition.outgoing
        outbound = [recipient for _, recipient in plan.remote] + redirects
        local_errors: dict[int, StoreError | None] = {}
        queue_error: Exception | None = None

        async def store_group(
            data: bytes, group: list[int], errors: list[StoreError | None]
        ) -> None:
            try:
                outcomes = await self.store.deliver(data, [deliveries[i] for i in group])
                for index, outcome in zip(group, outcomes, strict=True):
                    errors[index] = outcome.error
            except Exception as exc:  # the disk, the database: nothing was stored
                log.error("session %s: storing failed: %s", origin.session_id, exc)
                for index in group:
                    errors[index] = StoreError("temporary storage failure")

        async def store_locally() -> None:
            # One store call per distinct copy (accounts' verdict fields differ)
            groups: dict[int, tuple[bytes, list[int]]] = {}
            for index, data in enumerate(copies):
                groups.setdefault(id(data), (data, []))[1].append(index)
            errors: list[StoreError | None] = [None] * len(deliveries)
            if len(groups) == 1:
                await store_group(copies[0], list(range(len(deliveries))), errors)
            else:  # concurrently, so that the writer commits them in one batch
                async with anyio.create_task_group() as group:
                    for data, indexes in groups.values():
                        group.start_soon(store_group, data, indexes, errors)
            for account_id, error in zip(owners, errors, strict=True):
                # An account is served once one of its copies is stored.
                if error is None or account_id not in local_errors:
                    local_errors[account_id] = error

        async def queue_remote() -> None:
            nonlocal queue_error
            queued = OutboundMessage(
                envelope.mail_from,
                tuple(outbound),
                envelope.ret,
                envelope.envid,
                origin.source,
                envelope.smtputf8,
            )
            if deferred_spool and await self._spool(remote_data, queued, origin):
                return
            try:
                await self.store.enqueue(remote_data, queued)
            except Exception as exc:
                log.error("session %s: queueing failed: %s", origin.session_id, exc)
                queue_error = exc

        if deliveries and outbound:  # both: let them share one commit
            async with anyio.create_task_group() as group:
                group.start_soon(store_locally)
                group.start_soon(queue_remote)
        elif deliveries:
            await store_locally()
        elif outbound:
            await queue_remote()
        edited_failures = {
            account_id
            for account_id, recipient, disposition in edited
            if not await self._deliver_edited(
                account_id, recipient, disposition, envelope, origin, local_errors
            )
        }
        for account_id, (_account, indexes) in plan.local.items():
            if account_id in rejected:
                continue
            error = local_errors.get(account_id)
            for index in indexes:
                address = envelope.recipients[index].address
                plan.settle(index, _local_result(address, error))
                if account_id in redirecting and queue_error is not None:
                    plan.settle(index, _queue_failure(address))
                if account_id in edited_failures:
                    plan.settle(index, _queue_failure(address))
            hook = delivered_hooks.get(account_id)
            failed = (
                error is not None
                or account_id in edited_failures
                or (account_id in redirecting and queue_error is not None)
            )
            if hook is not None and not failed:
                try:
                    await hook()
                except Exception:  # a record lost is a duplicate missed, never mail lost
                    log.exception("session %s: the filter's record failed", origin.session_id)
        for index, _queued in plan.remote:
            address = envelope.recipients[index].address
            plan.settle(
                index,
                _queue_failure(address)
                if queue_error is not None
                else RecipientResult(address, 250, "2.0.0", "Queued"),
            )
        for reply in outgoing:
            await self._send_outgoing(reply)
        results = [plan.results[index] for index in range(len(envelope.recipients))]
        self._count(results)
        return results

    async def _deliver_edited(
        self,
        account_id: int,
        recipient: str,
        disposition: Disposition,
        envelope: Envelope,
        origin: Origin,
        local_errors: dict[int, StoreError | None],
    ) -> bool:
        """Store and redirect one account's own copy (its filter edited the header); False
        when its redirects could not be queued. Stored errors go to ``local_errors``."""
        data = disposition.message
        assert data is not None
        own = [LocalDelivery(account_id, t.mailbox, t.flags, t.create) for t in disposition.file]
        if own:
            try:
                errors = [o.error for o in await self.store.deliver(data, own)]
            except Exception as exc:
                log.error("session %s: storing failed: %s", origin.session_id, exc)
                errors = [StoreError("temporary storage failure")] * len(own)
            local_errors[account_id] = None if None in errors else errors[0]
        if not disposition.redirect:
            return True
        forwards = tuple(QueuedRecipient(a, f"rfc822;{recipient}") for a in disposition.redirect)
        remote = data[len(m.group(0)) :] if (m := _RETURN_PATH.match(data)) else data
        queued = OutboundMessage(
            envelope.mail_from, forwards, envelope.ret, envelope.envid, origin.source,
            envelope.smtputf8,
        )  # fmt: skip
        try:
            await self.store.enqueue(remote, queued)
        except Exception as exc:
            log.error("session %s: queueing failed: %s", origin.session_id, exc)
            return False
        return True

    async def _spool(self, data: bytes, message: OutboundMessage, origin: Origin) -> bool:
        queue = self.memory_queue()
        if queue is None:
            return False
        try:
            return await queue.spool(data, message)
        except Exception:  # a store lookup failed: the durable queue is the way
            log.exception("session %s: the deferred spool refused a message", origin.session_id)
            return False

    async def _plan(self, envelope: Envelope) -> _Plan:
        plan = _Plan()
        for index, recipient in enumerate(envelope.recipients):
            resolution = recipient.resolution or await self.directory.resolve(recipient.address)
            if not resolution.local_domain:
                plan.remote.append(
                    (index, QueuedRecipient(recipient.address, recipient.orcpt, recipient.notify))
                )
            elif not resolution.exists:
                plan.results[index] = RecipientResult(
                    recipient.address, 550, "5.1.1", "No such user here"
                )
            else:
                for account in resolution.accounts:
                    plan.local.setdefault(account.id, (account, []))[1].append(index)
                orcpt = recipient.orcpt or f"rfc822;{recipient.address}"
                for forward in resolution.forwards:
                    plan.remote.append((index, QueuedRecipient(forward, orcpt, recipient.notify)))
        return plan

    async def _filter(
        self, account: Account, envelope: Envelope, recipient: str, data: bytes
    ) -> Disposition:
        if self.message_filter is None:
            return KEEP
        try:
            return await self.message_filter.evaluate(account, envelope, recipient, data)
        except Exception:
            log.exception("filter failed for %s; keeping the message", account.address)
            return KEEP

    async def _classify(
        self, account: Account, head: bytes, body: bytes, data: bytes
    ) -> tuple[bytes, bool]:
        """(this account's copy with the junk filter's verdict fields, whether it is junk);
        on a failure, the copy without them: mail is never lost to a filter."""
        assert self.junk is not None
        try:
            verdict = await self.junk.classify(account.id, data)
        except Exception:
            log.exception("junk classification failed for %s", account.address)
            return data, False
        return head + verdict.fields + body, verdict.junk

    async def _quarantine(
        self, account: Account, disposition: Disposition, origin: Origin, why: str | None = None
    ) -> Disposition:
        """What the filter keeps goes to the account's Junk mailbox instead, with $Junk."""
        try:
            junk = await junk_mailbox(self.store, account.id)
        except Exception:  # the store: deliver with $Junk anyway, where the filter said
            log.exception("session %s: finding the Junk mailbox failed", origin.session_id)
            junk = "Junk"
        log.info(
            "session %s: quarantined for %s: %s",
            origin.session_id,
            account.address,
            why or origin.quarantine,
        )
        return quarantined(disposition, junk)

    async def _send_outgoing(self, reply: Outgoing) -> None:
        try:
            await self.store.enqueue(
                reply.data,
                OutboundMessage(
                    reply.mail_from,
                    tuple(QueuedRecipient(r) for r in reply.recipients),
                    source="sieve",
                ),
            )
        except Exception:
            log.exception("could not queue a reply to %s", ", ".join(reply.recipients))

    def _count(self, results: list[RecipientResult]) -> None:
        if self._counter is None or self._metrics is None:
            return
        for result in results:
            kind = "delivered" if result.ok else ("rejected" if result.permanent else "deferred")
            self._metrics.child(self._counter, kind).inc()


def _queue_failure(address: str) -> RecipientResult:
    return RecipientResult(address, 451, "4.3.0", "Temporary queue failure")


def _local_result(address: str, error: StoreError | None) -> RecipientResult:
    if error is None:
        return RecipientResult(address, 250, "2.0.0", "Delivered")
    if isinstance(error, QuotaExceeded):
        return RecipientResult(address, 552, "5.2.2", str(error))
    return RecipientResult(address, 451, "4.3.0", str(error) or "Temporary failure")
