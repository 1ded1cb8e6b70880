"""The renewal task: one loop per ``[acme."<id>"]``, in the server's task group.

Each loop sleeps until its certificate is due (``schedule.renewal_time``), or until someone
forces a renewal (``stalwart-py acme renew``, ``POST /api/certificates/{id}/renew``), then:

1. takes ``<data-dir>/acme/<id>.lock`` (an exclusive ``flock``), so that two processes on one
   data directory (workers, or a second server by mistake) never order at the same time, and
   on PostgreSQL the id's advisory lock, so that two nodes do not either; a
   process that waited for the lock first reads what the other one installed and does not
   order again when that is fresh;
2. registers the account (newAccount with the stored key finds the existing account, 7.3.1)
   and runs one order (``orders.issue``). The account key is in the store
   (``Store.acme_account``), the same for every node, so the CA sees one account;
3. installs the chain and key in the certificate store, which keeps them in the database and
   swaps them into every listener of every process and node at once (open sessions keep their
   certificate), or, on any failure, keeps the certificate in use, records the error (log,
   ``/metrics``, ``GET /api/certificates``) and tries again after a backoff that honours the
   CA's Retry-After. The challenges are answered from the store too, by whichever node the
   CA reaches.

A certificate being renewed is still served, so ``/readyz`` does not depend on this task.

With several worker processes (``run(shared=True)``) the scheduled renewals run in the one
worker holding the ``acme`` lease (``singleton.py``; another takes over when it dies; on
PostgreSQL the lease is the cluster's, ``Store.cluster_lease``: one process of all nodes). A
forced renewal asked of another worker (the API, the control socket) runs in that worker,
under the same ``<id>.lock``. Whichever renews writes the outcome to the account's row
(``state``), whose notification makes every process and node ``refresh``, so every
``GET /api/certificates`` says the same (the gauges in ``/metrics`` are set by the process
that renews).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from stalwart_py.acme import schedule
from stalwart_py.config.acme import AcmeSettings
from stalwart_py.files import FILE_MODE, private_dir, safe_join
from stalwart_py.metrics import Metrics
from stalwart_py.singleton import run_singleton
from stalwart_py.store.model import StoredCertificate

# The protocol client (httpx, josepy) and the certificate code (cryptography's x509) are
# imported by the first order or stored certificate that needs them, not at every start:
# most servers have no [acme] at all, and they were ~0.1 s of a start's imports.
if TYPE_CHECKING:
    from stalwart_py.acme.jws import AccountKey
    from stalwart_py.acme.orders import Challenge, Responder
    from stalwart_py.store import Store

log = logging.getLogger("stalwart_py.acme")

LOCK_POLL = 1.0  # seconds between tries of a lock another process holds
# What the process that renews tells the others, for their API and metrics.
SHARED_STATE = (
    "not_after",
    "next_renewal",
    "failures",
    "attempts",
    "last_error",
    "last_error_at",
    "last_renewal",
)


class CertificateSink(Protocol):
    """What the renewal task needs of the certificate store (stalwart_py/certificates.py)."""

    async def install(self, cert_id: str, chain_pem: bytes, key_pem: bytes) -> None: ...
    async def set_alpn_challenge(self, domain: str, cert_pem: bytes, key_pem: bytes) -> None: ...
    async def clear_alpn_challenge(self, domain: str) -> None: ...
    async def load(self) -> None: ...
    def stored(self, cert_id: str) -> StoredCertificate | None: ...


@dataclass
class AcmeState:
    """What is known of one ACME certificate, as the API and the metrics show it."""

    id: str
    domains: list[str]
    not_after: float | None = None
    next_renewal: float | None = None
    renewing: bool = False
    failures: int = 0  # in a row
    attempts: int = 0  # renewals finished since start, for those who wait for the next one
    last_error: str | None = None
    last_error_at: float | None = None
    last_renewal: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "next_renewal": _iso(self.next_renewal),
            "renewing": self.renewing,
            "failures": self.failures,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_renewal": _iso(self.last_renewal),
        }


@dataclass
class _Slot:
    settings: AcmeSettings
    state: AcmeState
    wake: anyio.Event = field(default_factory=anyio.Event)
    finished: anyio.Event = field(default_factory=anyio.Event)
    forced: bool = False
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class AcmeManager:
    """Every configured ACME certificate; see the module docstring."""

    def __init__(
        self,
        settings: dict[str, AcmeSettings],
        data_dir: Path,
        certificates: CertificateSink,
        metrics: Metrics,
        *,
        store: Store,
        rng: random.Random | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.store = store  # the account keys, the challenges, the renewal state
        self.certificates = certificates
        self.metrics = metrics
        self.rng = rng or random.Random()
        self._tg: TaskGroup | None = None
        self._scheduling = False  # this process runs the renewal loops (holds the lease)
        self.slots = {
            acme_id: _Slot(conf, AcmeState(acme_id, list(conf.domains)))
            for acme_id, conf in settings.items()
        }
        self._expiry = metrics.gauge(
            "stalwart_acme_certificate_expiry_timestamp_seconds",
            "notAfter of the ACME certificate in use",
            ["id"],
            aggregate="livemostrecent",  # the renewing worker's
        )
        self._next = metrics.gauge(
            "stalwart_acme_next_renewal_timestamp_seconds",
            "When the ACME certificate is next renewed (or retried)",
            ["id"],
            aggregate="livemostrecent",  # the renewing worker's
        )
        self._failing = metrics.gauge(
            "stalwart_acme_renewal_failing",
            "1 while the last renewal attempt failed (the error is in GET /api/certificates)",
            ["id"],
            aggregate="livemostrecent",  # the renewing worker's
        )
        self._renewals = metrics.counter(
            "stalwart_acme_renewals", "ACME renewal attempts, by result", ["id", "result"]
        )

    def configure(self, settings: dict[str, AcmeSettings]) -> None:
        """A reload: new settings of known ids apply from their next order; a new id starts
        its loop (ordering at once when it has no certificate); a removed id stops its loop
        (its certificate stays installed until it expires or is replaced)."""
        for acme_id in [i for i in self.slots if i not in settings]:
            self.slots.pop(acme_id).scope.cancel()
        for acme_id, conf in settings.items():
            slot = self.slots.get(acme_id)
            if slot is not None:
                slot.settings = conf
                slot.state.domains = list(conf.domains)
            else:
                slot = self.slots[acme_id] = _Slot(conf, AcmeState(acme_id, list(conf.domains)))
                if self._tg is not None and self._scheduling:
                    self._tg.start_soon(self._loop, slot)

    # -- the task ----------------------------------------------------------------------------

    async def run(
        self, *, shared: bool = False, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """One loop per id, until the server stops (an order in flight is abandoned; the
        certificate in use stays, and the next start orders again if it must). ``shared``:
        other processes serve this data directory, and the loops run only while this one
        holds the ``acme`` lease (see the module docstring)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self.refresh()
            task_status.started()
            lease = self.store.cluster_lease("acme")  # PostgreSQL: one process of all nodes
            if shared or lease is not None:
                await run_singleton(self.data_dir, "acme", self._schedule, lease=lease)
            else:
                await self._schedule()

    async def _schedule(self) -> None:
        assert self._tg is not None
        self._scheduling = True
        try:
            for slot in self.slots.values():
                self._tg.start_soon(self._loop, slot)
            await anyio.sleep_forever()  # ids added by a reload join the group
        finally:
            self._scheduling = False

    async def refresh(self) -> None:
        """Take the renewal state another process or node wrote (the account row's
        ``state``) for each id whose loop does not run here and that is not being renewed
        here."""
        if self._scheduling:
            return
        accounts = {a.id: a for a in await self.store.acme_accounts()}
        for acme_id, slot in self.slots.items():
            if slot.state.renewing or acme_id not in accounts:
                continue
            try:
                saved = json.loads(accounts[acme_id].state or "")
            except ValueError:
                continue
            if not isinstance(saved, dict):
                continue
            for name in SHARED_STATE:
                if name in saved:
                    setattr(slot.state, name, saved[name])

    async def _loop(self, slot: _Slot) -> None:
        with slot.scope:
            await self.certificates.load()
            self._load(slot)
            while True:
                delay = max(0.0, (slot.state.next_renewal or 0.0) - time.time())
                with anyio.move_on_after(delay):
                    await slot.wake.wait()
                slot.wake = anyio.Event()
                await self._renew(slot)

    def _load(self, slot: _Slot) -> None:
        """At start: plan the renewal of the certificate installed by the last run (the
        certificate store loaded it already); none, or an expired one: order now."""
        chain, key = self._stored(slot.state.id)
        not_after = _not_after(chain) if chain is not None and key is not None else None
        self._plan(slot, not_after if not_after and not_after > time.time() else None)

    def _plan(self, slot: _Slot, not_after: float | None) -> None:
        state = slot.state
        state.not_after = not_after
        if not_after is None:
            state.next_renewal = time.time()
        else:
            state.next_renewal = schedule.renewal_time(
                not_after, slot.settings.renew_before, self.rng
            )
            self._expiry.labels(state.id).set(not_after)
        self._next.labels(state.id).set(state.next_renewal)

    # -- forced renewal ----------------------------------------------------------------------

    async def renew_now(self, acme_id: str) -> AcmeState:
        """Renew at once and wait for the outcome; one already running is the one waited
        for (never two orders at a time). KeyError for an unknown id."""
        slot = self.slots[acme_id]
        finished = slot.finished
        if not slot.state.renewing:
            slot.forced = True
            if self._scheduling:
                slot.wake.set()
            else:  # the loop runs in another process: renew here (under the id's lock)
                await self._renew(slot)
                return slot.state
        await finished.wait()
        return slot.state

    def request_renewal(self, acme_id: str) -> None:
        """Start a renewal without waiting (the control socket's ``acme-renew``)."""
        slot = self.slots[acme_id]
        if self._scheduling:
            slot.forced = True
            slot.wake.set()
        elif self._tg is not None:
            self._tg.start_soon(self.renew_now, acme_id)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each id's renewal state, to extend the certificate store's entries with."""
        return {acme_id: slot.state.as_dict() for acme_id, slot in self.slots.items()}

    # -- one renewal -------------------------------------------------------------------------

    async def _renew(self, slot: _Slot) -> None:
        state = slot.state
        forced, slot.forced = slot.forced, False
        state.renewing = True
        try:
            async with self._locked(state.id):
                await self.certificates.load()  # what another process or node installed
                chain, key = self._stored(state.id)
                stored_until = _not_after(chain) if chain is not None else None
                if (
                    not forced
                    and chain is not None
                    and key is not None
                    and stored_until is not None
                    and stored_until != state.not_after
                    and schedule.renewal_time(stored_until, slot.settings.renew_before, self.rng)
                    > time.time()
                ):
                    # another process renewed it while this one waited for the lock
                    await self.certificates.install(state.id, chain, key)
                    log.info("ACME %s: renewed by another process; using its certificate", state.id)
                    self._succeeded(slot, stored_until)
                    return
                log.info(
                    "ACME %s: ordering a certificate for %s", state.id, ", ".join(state.domains)
                )
                issued = await self._order(slot)
                not_after = _not_after(issued.chain_pem)
                await self.certificates.install(state.id, issued.chain_pem, issued.key_pem)
                self._succeeded(slot, not_after)
        except Exception as exc:
            self._failed(slot, exc)
        finally:
            state.renewing = False
            state.attempts += 1
            await self._save_state(slot)
            finished, slot.finished = slot.finished, anyio.Event()
            finished.set()

    def _succeeded(self, slot: _Slot, not_after: float | None) -> None:
        state = slot.state
        state.failures = 0
        state.last_error = None
        state.last_renewal = time.time()
        self._plan(slot, not_after)
        self._failing.labels(state.id).set(0)
        self._renewals.labels(state.id, "success").inc()
        log.info(
            "ACME %s: certificate installed, valid until %s; next renewal %s",
            state.id,
            _iso(not_after),
            _iso(state.next_renewal),
        )

    def _failed(self, slot: _Slot, exc: Exception) -> None:
        from stalwart_py.acme.client import AcmeError  # the order that failed loaded it

        state = slot.state
        state.failures += 1
        state.last_error = str(exc) or type(exc).__name__
        state.last_error_at = time.time()
        retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
        delay = schedule.retry_delay(state.failures, retry_after, self.rng)
        state.next_renewal = time.time() + delay
        self._next.labels(state.id).set(state.next_renewal)
        self._failing.labels(state.id).set(1)
        self._renewals.labels(state.id, "failure").inc()
        kept = "keeping the certificate in use" if state.not_after else "no certificate yet"
        if not isinstance(exc, AcmeError | OSError | ValueError):
            log.exception("ACME %s: renewal failed", state.id)
        log.error(
            "ACME %s: renewal failed (%s): %s; retrying in %.0fs",
            state.id,
            kept,
            state.last_error,
            delay,
        )

    async def _order(self, slot: _Slot) -> Any:
        from stalwart_py.acme.client import AcmeClient
        from stalwart_py.acme.orders import issue

        conf = slot.settings
        key = await self._account_key(slot.state.id)
        async with AcmeClient(conf.directory, key, ca_file=conf.ca_file) as client:
            eab = (conf.eab.kid, conf.eab.hmac_key) if conf.eab is not None else None
            account = await client.register(list(conf.contact), eab)
            await self.store.update_acme_account(
                slot.state.id, directory=conf.directory, url=account
            )
            return await issue(client, list(conf.domains), conf.challenge, self._responder(conf))

    def _responder(self, conf: AcmeSettings) -> Responder:
        from stalwart_py.acme import challenges
        from stalwart_py.acme.orders import Responder

        if conf.challenge == "http-01":

            async def present(c: Challenge) -> None:
                await challenges.publish_http01(self.store, c.token, c.key_authorization)

            async def cleanup(c: Challenge) -> None:
                await challenges.withdraw_http01(self.store, c.token)

        else:

            async def present(c: Challenge) -> None:
                cert, key = challenges.alpn_certificate(c.domain, c.key_authorization)
                await self.certificates.set_alpn_challenge(c.domain, cert, key)

            async def cleanup(c: Challenge) -> None:
                await self.certificates.clear_alpn_challenge(c.domain)

        return Responder(present, cleanup)

    # -- what the store keeps -----------------------------------------------------------------

    async def _account_key(self, acme_id: str) -> AccountKey:
        """The id's account key, made (and kept in the store) by the first node to order."""
        from stalwart_py.acme.jws import AccountKey

        offered = AccountKey.generate()  # P-256: cheap; used only if there is none yet
        account = await self.store.acme_account(acme_id, offered.pem())
        if account.private_key == offered.pem():
            log.info("ACME %s: created an account key (kept in the store)", acme_id)
        return AccountKey.from_pem(account.private_key)

    async def _save_state(self, slot: _Slot) -> None:
        """Write the outcome for the other processes and nodes (see ``refresh``); the
        store's notification tells them."""
        state = {name: getattr(slot.state, name) for name in SHARED_STATE}
        try:
            await self.store.update_acme_account(slot.state.id, state=json.dumps(state))
        except Exception as exc:  # the outcome is still this process's; the others wait
            log.warning("ACME %s: cannot keep its state: %s", slot.state.id, exc)

    def _stored(self, acme_id: str) -> tuple[bytes | None, bytes | None]:
        """The chain and key installed under this id, by this process or another one (as
        the certificate store last read them)."""
        row = self.certificates.stored(acme_id)
        return (None, None) if row is None else (row.chain, row.private_key)

    @contextlib.asynccontextmanager
    async def _locked(self, acme_id: str) -> Any:
        private_dir(self.data_dir / "acme")
        path = safe_join(self.data_dir / "acme", f"{acme_id}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await anyio.sleep(LOCK_POLL)  # another process is ordering this one
            # PostgreSQL: the other nodes' processes too (a forced renewal asked of each)
            lease = self.store.cluster_lease(f"acme-order:{acme_id}")
            if lease is None:
                yield
                return
            try:
                # another node ordering this one holds it: its lock sets no Event here
                while not await anyio.to_thread.run_sync(lease.try_acquire):  # noqa: ASYNC110
                    await anyio.sleep(LOCK_POLL)  # ok: polled, as the flock above
                yield
            finally:
                await anyio.to_thread.run_sync(lease.release)
        finally:
            os.close(fd)  # closing releases the lock


def _not_after(chain: bytes) -> float | None:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(chain).not_valid_after_utc.timestamp()
    except ValueError:
        return None


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
