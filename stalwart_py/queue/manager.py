"""The queue's scheduler and workers.

The scheduler reads the recipients that are due from the store (when woken by a new message,
by ``wake()``, or every ``queue.poll-interval``), groups them into jobs (one per message and
destination: all of a message's recipients at one domain, or at the smarthost, go in one
transaction) and hands each job to its destination's workers.

A worker holds one connection to its destination and delivers job after job over it
(connection reuse), up to ``queue.max-messages-per-connection``. A destination gets one
worker for every ``JOBS_PER_CONNECTION`` jobs waiting, up to
``queue.max-connections-per-destination``; all workers together hold at most
``queue.max-connections`` connections.

The deferred spool (``spool()``, see ``spool.py``) adds jobs for messages held in memory: they
go to the same workers, and their outcome is settled by ``MemorySpool`` instead of the store.

Crash safety. A job's outcome is written to the store (with the DSN it causes, in the same
transaction) only after the attempt; until then the recipients stay pending. A crash, or a
shutdown, in between leaves them pending: they are tried again, so a message may at worst be
delivered twice, never lost. Within the process a recipient is taken by one worker at a
time (``_taken``); one server per data directory is enforced by the pid file lock.

Across processes and nodes a recipient is taken with a lease in the store (``owner``, for
``queue.lease-time``; see ``store/sqlite_queue.py``): a scan leases the due recipients it
turns into jobs, an outcome recorded ends the lease, and each scan renews the leases of the
jobs still under way. On a store shared by several nodes (PostgreSQL) every node runs its
queue this way; otherwise one process runs it (``singleton.py``) and, knowing it is alone,
ends at its start the leases a killed predecessor left.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus

from stalwart_py.config.outbound_tls import TlsReportSettings
from stalwart_py.config.schema import DkimSettings, QueueSettings
from stalwart_py.delivery import Delivery
from stalwart_py.metrics import Metrics
from stalwart_py.queue.dkim import DkimSigner, stored_keys
from stalwart_py.queue.outcomes import Outcome, notification, settle
from stalwart_py.queue.routes import Destination, RouteFailed, Router, make_resolver
from stalwart_py.queue.schedule import Clock, RetrySchedule, SystemClock
from stalwart_py.queue.spool import MemorySpool
from stalwart_py.queue.tls_policy import OutboundTLS
from stalwart_py.resolver import Resolver
from stalwart_py.singleton import run_singleton
from stalwart_py.store import OutboundMessage, Store
from stalwart_py.store.change_hub import QUEUE_CHANNEL
from stalwart_py.store.sqlite_shared_state import DKIM_CHANNEL

# The delivery side, with the outbound SMTP client (attempts.py, session.py, protocol.py), is
# imported by the first job, not by every start: a server with an empty queue never needs it.
if TYPE_CHECKING:
    from stalwart_py.queue.attempts import Connector, Job
    from stalwart_py.queue.session import SessionFailed, SmtpSession

    Attempt = Callable[[Job, bytes], Awaitable[list[Outcome]]]

log = logging.getLogger("stalwart_py.queue")

JOBS_PER_CONNECTION = 8  # jobs waiting for a destination before it gets another connection
SCAN_LIMIT = 1000  # messages read per scan; more wait for the next one
REPORT_LEASE = "tls-reports"  # TLS-RPT sending: once, while every process runs a queue
STOP_WRITE_TIMEOUT = 30.0  # for writing what the deferred spool holds when the server stops


class QueueManager:
    def __init__(
        self,
        settings: QueueSettings,
        store: Store,
        delivery: Delivery,
        *,
        hostname: Callable[[], str],
        data_dir: Path,
        dkim: dict[str, DkimSettings] | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        resolver: Resolver | None = None,
        report: TlsReportSettings | None = None,
    ) -> None:
        self.store = store
        # The server's one resolver; a queue run on its own makes one from [queue.dns].
        self._resolver = resolver
        self.delivery = delivery
        self.hostname = hostname
        self.clock: Clock = clock or SystemClock()
        self.signer = DkimSigner(dkim or {})
        # The store's DKIM keys are read before the first signature and again before the
        # next one after any process or node changed them (the watch's callback runs in the
        # change's notification, so a key added here is used by the very next message).
        self._dkim_generation = 0  # moved by each change
        self._dkim_loaded = -1  # the generation the signer's stored keys are of
        self._dkim_lock = anyio.Lock()
        self._dkim_watch = store.changes.watch(DKIM_CHANNEL)
        self._dkim_watch.on_change = self._dkim_changed
        self.data_dir = data_dir
        self._limiter = anyio.CapacityLimiter(settings.max_connections)
        metrics = metrics or Metrics()
        # DANE, MTA-STS and TLS-RPT of MX deliveries (tls_policy.py); the reporter's daily
        # job and policy refreshes run in ``run``'s task group.
        self.outbound_tls = OutboundTLS(
            store,
            self._resolver or make_resolver(settings),
            settings,
            report or TlsReportSettings(),
            hostname,
            self.clock,
            metrics,
        )
        self.configure(settings, dkim or {})
        self._waiting: dict[Destination, deque[Job]] = {}
        self._workers: dict[Destination, int] = {}
        self._taken: set[int] = set()  # recipient ids in a job that has not finished
        # This runner's name on its leases, unique per start: a restarted process does not
        # take up the leases its killed predecessor held (they lapse, or are ended at start).
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._leased: set[int] = set()  # store recipients leased by a job not yet finished
        self._renew_at = 0.0
        # A scan reads a snapshot; a job that finishes while the scan runs must not be taken
        # again from it. Recipient id -> the number of scans started when its job finished.
        self._finished: dict[int, int] = {}
        self._scans = 0
        self._active_scans: set[int] = set()
        # One scan at a time: a scan started while another is between leasing its recipients
        # and taking them as jobs would find them leased and no job yet, and a flush then
        # returned before they were tried (on PostgreSQL, where leasing is a round trip).
        self._scanning = anyio.Lock()
        self._wakeup = anyio.Event()
        self._idle = anyio.Event()
        self._task_group: TaskGroup | None = None
        self._memory = MemorySpool(store, metrics)
        self._results = metrics.counter(
            "stalwart_queue_attempts",
            "Outbound delivery attempts, per recipient, by result",
            ["result"],
        )
        self._connections = metrics.gauge(
            "stalwart_queue_connections", "Outbound SMTP connections open"
        )

    def configure(
        self,
        settings: QueueSettings,
        dkim: dict[str, DkimSettings],
        report: TlsReportSettings | None = None,
    ) -> None:
        """Apply a (re)loaded configuration; jobs under way finish with the old one."""
        self.settings = settings
        self.schedule = RetrySchedule(settings.retry, settings.max_age)
        self.router = Router(settings, self._resolver or make_resolver(settings))
        self.outbound_tls.configure(settings, report, self.router.resolver)
        self._connector: Connector | None = None  # made again, for these settings, when used
        self.signer.configured = dkim  # the key files are read again
        self._limiter.total_tokens = settings.max_connections

    @property
    def connector(self) -> Connector:
        """How remote jobs open their SMTP sessions, made by the first one (see above)."""
        if self._connector is None:
            from stalwart_py.queue.attempts import Connector, TLSContexts
            from stalwart_py.queue.session import Timeouts

            settings = self.settings
            self._connector = Connector(
                self.router,
                Timeouts(settings.connect_timeout, settings.command_timeout, settings.data_timeout),
                TLSContexts(settings.tls.ca_file),
                self.hostname,
                self.outbound_tls,
            )
        return self._connector

    # -- scheduling -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled (what is under way then is tried again later; what the
        deferred spool holds is written to the durable queue first)."""
        try:
            async with anyio.create_task_group() as group:
                self._task_group = group
                group.start_soon(self._forward_store_changes)
                self.outbound_tls.policies.spawn = group.start_soon
                if self.store.shared_queue:  # every node runs queues: one process reports
                    lease = self.store.cluster_lease(REPORT_LEASE)
                    report = functools.partial(run_singleton, lease=lease)
                    group.start_soon(
                        report, self.data_dir, REPORT_LEASE, self.outbound_tls.reporter.run
                    )
                else:  # the only runner: what a killed predecessor held is free at once
                    await self.store.release_queue_leases()
                    await group.start(self.outbound_tls.reporter.run)
                task_status.started()
                try:
                    while True:
                        await self.scan()
                        with anyio.move_on_after(self.settings.poll_interval):
                            await self._wakeup.wait()
                        self._wakeup = anyio.Event()
                finally:
                    self._task_group = None
                    self.outbound_tls.policies.spawn = None
        finally:
            # The workers are gone; the store is still open (the server closes it after us).
            with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_WRITE_TIMEOUT):
                await self._memory.persist_all(self.clock.now())
                # What was under way is tried again at once, here or by another node.
                try:
                    await self.store.release_queue_leases(self.owner)
                except Exception:
                    log.exception("cannot end this runner's queue leases; they will lapse")

    async def spool(self, data: bytes, message: OutboundMessage) -> bool:
        """``smtp.deferred-spool``: hold ``message`` in memory and start delivering it now
        (``spool.py``). False when the queue cannot take it (not running, ``queue.hold``,
        memory full): the caller then queues it durably."""
        if self._task_group is None or self.settings.hold or not message.recipients:
            return False
        destinations: dict[str, Destination] = {}
        for recipient in message.recipients:
            domain = recipient.address.rpartition("@")[2].lower()
            if domain not in destinations:
                local = await self.store.is_local_domain(domain)
                destinations[domain] = self.router.destination(domain, local)
        spooled = self._memory.admit(data, message, self.clock.now())
        if spooled is None:
            return False
        groups: dict[Destination, list] = {}
        for state in spooled.entry.recipients:
            groups.setdefault(destinations[state.domain], []).append(state)
        from stalwart_py.queue.attempts import Job

        for destination, recipients in groups.items():
            self._add_job(Job(spooled.entry, tuple(recipients), destination, memory=spooled))
            self._dispatch(destination)
        return True

    def wake(self) -> None:
        """Look at the queue now (after ``queue retry``, or a test moving the clock)."""
        self._wakeup.set()

    async def flush(self) -> None:
        """Start every job due now and wait until all jobs under way have finished."""
        await self.scan()
        while self._taken:
            await self._idle.wait()

    def _dkim_changed(self) -> None:
        self._dkim_generation += 1

    async def _refresh_dkim(self) -> None:
        """Read the store's keys if they changed since last read; concurrent attempts wait
        for the one reading rather than signing with what was there before."""
        if self._dkim_loaded == self._dkim_generation:
            return
        async with self._dkim_lock:
            while self._dkim_loaded != self._dkim_generation:
                generation = self._dkim_generation
                self.signer.stored = await stored_keys(self.store)
                self._dkim_loaded = generation

    async def _forward_store_changes(self) -> None:
        with self.store.changes.watch(QUEUE_CHANNEL) as watch:
            while True:
                await watch.wait()
                self.wake()

    async def scan(self) -> None:
        """Turn the recipients due now into jobs for their destinations' workers (none
        while ``queue.hold`` is on)."""
        async with self._scanning:
            await self._memory.retry_unwritten()
            await self._renew_leases()
            if self.settings.hold:
                return
            self._scans += 1
            scan = self._scans
            self._active_scans.add(scan)
            try:
                await self._scan(scan)
            finally:
                self._active_scans.discard(scan)
                oldest = min(self._active_scans, default=self._scans + 1)
                self._finished = {k: v for k, v in self._finished.items() if v >= oldest}

    async def _renew_leases(self) -> None:
        """Renew the leases of the jobs under way, every third of ``queue.lease-time`` (the
        scans come at least every ``queue.poll-interval``)."""
        now = self.clock.now()
        if not self._leased or now < self._renew_at:
            return
        lease_time = self.settings.lease_time
        await self.store.renew_queue_leases(self.owner, sorted(self._leased), now + lease_time)
        self._renew_at = now + lease_time / 3

    async def _scan(self, scan: int) -> None:
        now = self.clock.now()
        lease_time = self.settings.lease_time
        if not self._leased:
            self._renew_at = now + lease_time / 3
        entries, leased = await self.store.lease_queue_entries(
            self.owner, now, lease_time, SCAN_LIMIT
        )
        local: dict[str, bool] = {}
        jobs: list[Job] = []
        for entry in entries:
            groups: dict[Destination, list] = {}
            for recipient in entry.recipients:
                if recipient.id not in leased:
                    continue  # not due, or under way here or on another node
                if recipient.id in self._taken or self._finished.get(recipient.id, 0) >= scan:
                    continue  # under way, or finished after this scan's snapshot was read
                if recipient.domain not in local:
                    local[recipient.domain] = await self.store.is_local_domain(recipient.domain)
                destination = self.router.destination(recipient.domain, local[recipient.domain])
                groups.setdefault(destination, []).append(recipient)
            if groups:
                from stalwart_py.queue.attempts import Job
            for destination, recipients in groups.items():
                jobs.append(Job(entry, tuple(recipients), destination))
        for job in jobs:
            self._leased.update(r.id for r in job.recipients)
            self._add_job(job)
        unused = leased - self._leased
        if unused:  # leased but not taken (finished since): free for the next scan at once
            await self.store.renew_queue_leases(self.owner, sorted(unused), None)
        for destination in list(self._waiting):
            self._dispatch(destination)

    def _add_job(self, job: Job) -> None:
        self._taken.update(r.id for r in job.recipients)
        if self._idle.is_set():  # replaced only once set: no waiter is left behind
            self._idle = anyio.Event()
        self._waiting.setdefault(job.destination, deque()).append(job)

    def _dispatch(self, destination: Destination) -> None:
        waiting = len(self._waiting.get(destination, ()))
        if not waiting or self._task_group is None:
            return
        wanted = min(
            self.settings.max_connections_per_destination,
            math.ceil(waiting / JOBS_PER_CONNECTION),
        )
        while self._workers.get(destination, 0) < wanted:
            self._workers[destination] = self._workers.get(destination, 0) + 1
            self._task_group.start_soon(self._worker, destination)

    def _release(self, job: Job) -> None:
        self._taken.difference_update(r.id for r in job.recipients)
        if job.memory is None:
            self._leased.difference_update(r.id for r in job.recipients)
        if self._active_scans:
            self._finished.update((r.id, self._scans) for r in job.recipients)
        if not self._taken:
            self._idle.set()

    # -- workers ----------------------------------------------------------------------------

    async def _worker(self, destination: Destination) -> None:
        try:
            if destination.kind == "local":
                while job := self._next_job(destination):
                    await self._attempt(job, self._local_attempt)
            else:
                async with self._limiter:
                    await self._remote_worker(destination)
        finally:
            self._workers[destination] -= 1
            if not self._workers[destination]:
                del self._workers[destination]
            if not self._waiting.get(destination):
                self._waiting.pop(destination, None)
            else:
                self._dispatch(destination)

    def _next_job(self, destination: Destination) -> Job | None:
        waiting = self._waiting.get(destination)
        return waiting.popleft() if waiting else None

    async def _remote_worker(self, destination: Destination) -> None:
        link = _Link()
        try:
            while job := self._next_job(destination):
                await self._attempt(job, functools.partial(self._remote_attempt, link))
                failure = link.unreachable
                if failure is not None:
                    # The destination is down: every job waiting for it fails alike, rather
                    # than each trying every host again.
                    link.unreachable = None
                    while job := self._next_job(destination):
                        await self._attempt(job, functools.partial(_fail, failure))
        finally:
            if link.session is not None:
                await self._close(link.session)

    async def _close(self, session: SmtpSession) -> None:
        self._connections.dec()
        await session.close()

    async def _remote_attempt(self, link: _Link, job: Job, data: bytes) -> list[Outcome]:
        from stalwart_py.queue.attempts import deliver_remote, failure_outcomes
        from stalwart_py.queue.session import SessionFailed

        await self._refresh_dkim()  # a store failing here fails the attempt: never unsigned
        data = await anyio.to_thread.run_sync(self.signer.sign, data, job.entry.mail_from)
        for may_retry in (True, False):
            session = link.session
            if session is not None and (
                session.broken or session.transactions >= self.settings.max_messages_per_connection
            ):
                await self._close(session)
                session = link.session = None
            if session is None:
                try:
                    session = link.session = await self.connector.open(job.destination)
                except (RouteFailed, SessionFailed) as failure:
                    log.warning("cannot deliver to %s: %s", job.destination, failure)
                    link.unreachable = failure
                    return failure_outcomes(job.recipients, failure, None)
                self._connections.inc()
            try:
                return await deliver_remote(session, job, data)
            except SessionFailed as failure:
                reused = session.transactions > 1
                await self._close(session)
                link.session = None
                if not (reused and may_retry):
                    return failure_outcomes(job.recipients, failure, session.target.host)
                # A connection kept open between messages may have been closed by the
                # server: the message deserves a fresh one before it counts as a failure.
                log.info("connection to %s lost (%s); reconnecting", session.target.host, failure)
        raise AssertionError("unreachable")

    async def _local_attempt(self, job: Job, data: bytes) -> list[Outcome]:
        from stalwart_py.queue.attempts import deliver_local

        return await deliver_local(self.delivery, job, data)

    async def _attempt(self, job: Job, attempt: Attempt) -> None:
        """Run one attempt and record its outcome; a failure here never stops the queue."""
        try:
            if job.memory is not None:
                data: bytes | None = job.memory.data
            else:
                blobs = await self.store.read_blobs([job.entry.blob_id])
                data = blobs.get(job.entry.blob_id)
            if data is None:
                return  # deleted meanwhile
            outcomes = await attempt(job, data)
            await self._record(job, outcomes, data)
        except Exception:
            log.exception("%s: delivery attempt to %s failed", job.label, job.destination)
            if job.memory is not None:  # no outcome: written down rather than lost
                await self._memory.persist(job.memory, job.recipients, self.clock.now())
            else:  # no outcome: the next scan tries again rather than waiting for the lease
                await self._end_leases(job)
        finally:
            self._release(job)

    async def _end_leases(self, job: Job) -> None:
        try:
            await self.store.renew_queue_leases(self.owner, [r.id for r in job.recipients], None)
        except Exception:  # the store is failing too: the leases lapse by themselves
            log.exception("%s: cannot end the leases of its recipients", job.label)

    async def _record(self, job: Job, outcomes: list[Outcome], original: bytes) -> None:
        now = self.clock.now()
        result = settle(
            job.entry, outcomes, now, self.schedule, final_delivery=job.destination.kind == "local"
        )
        dsn = notification(job.entry, result.reports, original, self.hostname())
        if job.memory is not None:
            await self._memory.settle(job.memory, job.recipients, result.updates, dsn)
        else:
            await self.store.update_queue_recipients(job.entry.id, result.updates, notification=dsn)
        for outcome in outcomes:
            state = (
                "delivered" if outcome.delivered else "failed" if outcome.permanent else "deferred"
            )
            log.info(
                "%s: %s <%s> via %s: %s %s",
                job.label,
                state,
                outcome.recipient.address,
                outcome.remote_mta or job.destination,
                outcome.status,
                outcome.diagnostic or outcome.text,
            )
        for name, count in (
            ("delivered", result.delivered),
            ("failed", result.failed),
            ("deferred", result.deferred),
        ):
            if count:
                self._results.labels(name).inc(count)


@dataclass
class _Link:
    """A remote worker's connection, and whether its destination just proved unreachable."""

    session: SmtpSession | None = None
    unreachable: RouteFailed | SessionFailed | None = None


async def _fail(failure: RouteFailed | SessionFailed, job: Job, _data: bytes) -> list[Outcome]:
    from stalwart_py.queue.attempts import failure_outcomes

    return failure_outcomes(job.recipients, failure, None)
