"""The server's lifecycle: start, signals (SIGTERM/SIGINT stop, SIGHUP reload), shutdown.

``Server.run`` owns one task group: the listener registry and, when running as the main
program, the signal watcher. When the registry has finished (sessions done or the grace
period over), the task group is cancelled and ``run`` returns.

A running server keeps ``<data-dir>/stalwart-py.pid`` locked (two servers on one data
directory would fight over it) and writes ``<data-dir>/stalwart-py.status.json`` after it
starts and after every reload attempt, which ``stalwart-py reload`` waits for, and listens on
``<data-dir>/stalwart-py.sock`` for ``stalwart-py listener`` (``control.py``). With
``--notify-fd`` the same events go as JSON lines to a file descriptor, so that whoever
started the server (a test, a supervisor) can wait for readiness instead of sleeping.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from stalwart_py.acme import AcmeManager
from stalwart_py.acme.commands import acme_commands
from stalwart_py.acme.imports import import_acme_files
from stalwart_py.certificates import CertificateError
from stalwart_py.config import Config, ConfigError, LoggingSettings, load_config
from stalwart_py.config.running import needs_restart, require_listener
from stalwart_py.context import ServerContext
from stalwart_py.control import ControlServer, listener_commands
from stalwart_py.files import (
    DIRECTORY_MODE,
    FILE_MODE,
    loose_entries,
    open_private,
    private_dir,
    write_private,
)
from stalwart_py.listeners import ApplyError, ListenerRegistry, ReloadReport
from stalwart_py.plugin import Protocol, discover_protocols, require_compatible_plugins
from stalwart_py.queue import QueueManager
from stalwart_py.queue.dkim import import_key_files
from stalwart_py.shared import FILE as SHARED_FILE
from stalwart_py.shared import SharedState
from stalwart_py.singleton import run_dir, run_singleton
from stalwart_py.store import Store, StoreError, create_store
from stalwart_py.store.blobstore.sweep import LEASE as SWEEP_LEASE
from stalwart_py.store.blobstore.sweep import run_sweeps
from stalwart_py.store.change_hub import CERTIFICATES_CHANNEL
from stalwart_py.store.model import database_failure
from stalwart_py.worker import SupervisorLink, WorkerRole

log = logging.getLogger("stalwart_py.server")

PID_FILE = "stalwart-py.pid"
STATUS_FILE = "stalwart-py.status.json"
MAX_LOOSE_SHOWN = 10  # warning lines about loose modes at start; then one line with the rest


class StartupError(Exception):
    """The server cannot start; the message says why."""


def protocol_settings(classes: dict[str, type[Protocol]]) -> dict[str, type | None]:
    return {name: cls.settings for name, cls in classes.items()}


def load(
    path: Path, classes: dict[str, type[Protocol]] | None = None, *, serving: bool = False
) -> Config:
    """Load a configuration against the installed protocols (raises ConfigError). To serve
    with (``serving``), it must also have an enabled listener."""
    classes = classes or discover_protocols()
    config = load_config(path, protocol_settings(classes))
    for warning in config.warnings:  # deprecated keys: used, and said so at every load
        log.warning("%s", warning)
    if serving:
        require_listener(config)
        require_compatible_plugins(config, classes)
    return config


class Server:
    def __init__(
        self,
        config_path: Path,
        *,
        notify_fd: int | None = None,
        protocols: dict[str, type[Protocol]] | None = None,
        config: Config | None = None,
        worker: WorkerRole | None = None,
    ) -> None:
        """``protocols`` replaces entry-point discovery (for embedding the server, and tests).
        ``config``: already loaded (a worker gets its supervisor's). ``worker``: this server
        is one of the supervisor's worker processes (``stalwart_py.worker``)."""
        self.config_path = config_path
        self.notify_fd = notify_fd
        self.worker = worker
        self._fixed_protocols = protocols
        self.protocol_classes = protocols if protocols is not None else discover_protocols()
        self.config = config or load(config_path, self.protocol_classes, serving=True)
        # Applies [logging] (start and reload) when the server owns the process's logging
        # (``serve`` sets it); a server embedded in another program leaves logging to it.
        self.configure_logging: Callable[[LoggingSettings], None] | None = None
        self.protocols: dict[str, Protocol] = {}
        self.generation = 0
        self.context: ServerContext | None = None
        self.registry: ListenerRegistry | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._link: SupervisorLink | None = None
        self._own_shared: SharedState | None = None  # a server of one process makes its own

    async def run(
        self,
        *,
        handle_signals: bool = False,
        task_status: TaskStatus[Server] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        data_dir = self.config.storage.data_dir
        try:
            private_dir(data_dir)
        except OSError as exc:
            raise StartupError(
                f"cannot create the data directory {data_dir}: {exc.strerror or exc} (create "
                f"it, writable by the user the server runs as (uid {os.getuid()}), or set "
                "storage.data-dir)"
            ) from None
        if self.worker is None:  # else the supervisor did, and holds the pid file
            _warn_if_loose(data_dir)
        pid_lock = (
            _locked_pid_file(data_dir / PID_FILE)
            if self.worker is None
            else contextlib.nullcontext()
        )
        with pid_lock:
            try:
                store = create_store(self.config.storage)
                await store.open()
            except (StoreError, OSError, sqlite3.Error) as exc:  # BlobBackendError too
                # Not the URL: it may hold a password.
                where = "PostgreSQL" if self.config.storage.url else data_dir
                raise StartupError(f"cannot open the store in {where}: {exc}") from None
            try:
                await self._serve(store, handle_signals, task_status)
            finally:
                with anyio.CancelScope(shield=True):
                    await store.close()
                if self._own_shared is not None:
                    self._own_shared.close()
                    self._own_shared = None
            self._notify({"event": "stopped"})

    async def _sweep_blobs(self) -> None:
        store, blob = self.context.store, self.config.storage.blob
        assert store.blob_backend is not None
        await run_sweeps(
            store, store.blob_backend, interval=blob.sweep_interval, grace=blob.grace_period
        )

    async def _serve(
        self, store: Store, handle_signals: bool, task_status: TaskStatus[Server]
    ) -> None:
        limits = self.worker.limits if self.worker is not None else None
        self.context = ServerContext(self.config, store, limits=limits)
        self.context.reload = self.reload
        try:  # an earlier version's key files: into the store before anything reads them
            await import_key_files(store, self.config.storage.data_dir)
            await import_acme_files(store, self.config.storage.data_dir)
        except (StoreError, OSError) as exc:
            raise StartupError(f"cannot import the DKIM and ACME files: {exc}") from None
        try:  # [certificate.*] before any listener's context is made (they choose from them)
            await self.context.certificates.load()  # installed ones, from the store
            self.context.certificates.configure(self.config.certificates, str(self.config_path))
        except CertificateError as exc:
            raise StartupError(str(exc)) from None
        if self.worker is not None:  # a reload asked here is every worker's
            self._link = SupervisorLink(self)
            self.context.reload = self._link.reload
        given = administrator_password()
        try:
            created = await self.context.directory.ensure_administrator(self.config.hostname, given)
        except StoreError as exc:
            raise StartupError(f"cannot create the administrator account: {exc}") from None
        if created is not None and given is None:
            _announce_administrator(*created)
        elif created is not None:
            log.info("created the administrator account %s with the given password", created[0])
        if self.worker is not None and self.worker.index == 0:
            # The schema is migrated and the administrator made: the other workers may start
            # (they would race on both), in parallel with the rest of this one's start.
            self._notify({"event": "initialised"})
        self._instantiate_protocols()
        if self.worker is not None and self.worker.shared is not None:
            shared = self.worker.shared
        else:  # one process: the same counts and flags as workers use, shared with nobody
            data_dir = self.config.storage.data_dir
            shared = self._own_shared = SharedState(run_dir(data_dir) / SHARED_FILE, create=True)
        self.registry = ListenerRegistry(
            self.context,
            self.protocols,
            inherited=self.worker.sockets if self.worker is not None else None,
            shared=shared,
        )
        # The outbound queue's workers belong to this task group: they stop with it, and
        # whatever they were delivering stays queued (see stalwart_py/queue/manager.py).
        self.context.queue = QueueManager(
            self.config.queue,
            store,
            self.context.delivery,
            hostname=lambda: self.config.hostname,
            data_dir=self.config.storage.data_dir,
            dkim=self.config.dkim,
            metrics=self.context.metrics,
            resolver=self.context.resolver,
            report=self.config.report.tls,
        )
        self.context.acme = AcmeManager(
            self.config.acme,
            self.config.storage.data_dir,
            self.context.certificates,
            self.context.metrics,
            store=store,
        )
        # its renewal state (next renewal, last error) beside each entry the store describes,
        # and an id whose first order has not succeeded yet listed with that state alone
        self.context.certificates.add_details(self.context.acme.describe)
        # A failed start is raised after the task group, not from inside ``except*``: an
        # exception raised there comes out wrapped in an ExceptionGroup, which printed a
        # traceback instead of the one line ``serve`` prints for a StartupError.
        problems: list[str] = []
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                if handle_signals:
                    tg.start_soon(self._watch_signals)
                if self._link is not None:
                    tg.start_soon(self._link.follow)
                tg.start_soon(self._watch_certificates)
                data_dir = self.config.storage.data_dir
                if self.worker is None or store.shared_queue:
                    # every process of every node on PostgreSQL: the store's leases keep the
                    # runners apart (queue/manager.py)
                    await tg.start(self.context.queue.run)
                else:  # in the one worker that holds the queue's lease at a time
                    tg.start_soon(run_singleton, data_dir, "queue", self.context.queue.run)
                await tg.start(self.context.junk.run)  # junk training from IMAP
                if store.blob_backend is not None:  # orphan bodies, once per cluster
                    sweep = partial(run_singleton, lease=store.cluster_lease(SWEEP_LEASE))
                    tg.start_soon(sweep, data_dir, SWEEP_LEASE, self._sweep_blobs)
                await tg.start(self._run_registry)
                tg.start_soon(self._follow_certificates, store)
                # ACME after the listeners: its challenges are answered by them; with workers,
                # renewals are scheduled in the one holding the lease
                await tg.start(partial(self.context.acme.run, shared=self.worker is not None))
                if self.worker is None or self.worker.serves_control:
                    await self._start_control(tg)
                    await self._log_how_to_log_in()
                self._announce("ready")
                task_status.started(self)
        except* ApplyError as group:
            problems = [p for exc in _leaves(group) for p in exc.problems]
        if problems:
            raise StartupError("; ".join(problems))

    async def _run_registry(self, *, task_status: TaskStatus[None]) -> None:
        assert self.registry is not None
        await self.registry.run(self.config, on_drain=self._draining, task_status=task_status)
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()  # the signal watcher's work is done too

    async def _start_control(self, tg: anyio.abc.TaskGroup) -> None:
        """The control socket (``stalwart-py listener ...``), in the server's task group: up
        before the server reports ready, gone when it stops. Without it the server still
        serves mail, so a failure is logged rather than fatal."""
        assert self.registry is not None
        assert self.context is not None
        assert self.context.acme is not None
        commands = {**listener_commands(self.registry), **acme_commands(self.context.acme)}
        control = ControlServer(self.config.storage.data_dir, commands)
        try:
            control.bind()
        except OSError as exc:
            log.error(
                "no control socket, so `stalwart-py listener` cannot reach this server: "
                "cannot bind %s: %s",
                control.path,
                exc.strerror or exc,
            )
            return
        await tg.start(control.run)

    def stop(self) -> None:
        """Begin a graceful stop: no new connections, open sessions get the grace period."""
        if self.registry is not None:
            self.registry.stop()

    def _draining(self) -> None:
        log.info(
            "stopped accepting; open sessions have %gs to finish",
            self.config.server.shutdown_timeout,
        )
        self._notify({"event": "stopping"})

    async def reload(self, *, resume: bool = True) -> ReloadReport:
        """Re-read and apply the configuration file. On a ConfigError or ApplyError nothing
        changes and the error is raised; either way the outcome is logged and announced.

        The file is the truth about which listeners run: a reload brings back a listener that
        was disabled at run time (``re-enabled`` in the report), so that one who disabled the
        listener serving the API has a way back short of a restart. ``resume=False`` keeps
        run-time state: the automatic reload after a certificate renewal, which nobody asked
        for, does not undo what an operator disabled."""
        assert self.registry is not None
        self.generation += 1
        try:
            if self._fixed_protocols is None:
                self.protocol_classes = discover_protocols()
            config = load(self.config_path, self.protocol_classes, serving=True)
            if problems := needs_restart(self.config, config):
                raise ConfigError(problems)
            assert self.context is not None
            try:
                staged = self.context.certificates.stage(config.certificates, str(config.file))
            except CertificateError as exc:
                raise ApplyError([str(exc)]) from None
            self._instantiate_protocols()
            report = await self.registry.apply(config)
            self.context.certificates.commit(staged)
        except (ConfigError, ApplyError) as exc:
            problems = (
                [str(i) for i in exc.issues] if isinstance(exc, ConfigError) else exc.problems
            )
            for problem in problems:
                log.error("reload failed, nothing changed: %s", problem)
            self._announce("reload-failed", errors=problems)
            raise
        if config.logging != self.config.logging and self.configure_logging is not None:
            self.configure_logging(config.logging)
        self.config = config
        if resume:
            for lid in self.registry.listeners:
                # Enabled in the file, or apply() would have removed it.
                if self.registry.is_suspended(lid):
                    self.registry.set_suspended(lid, False)
                    report.reenabled.append(lid)
        assert self.context is not None
        self.context.directory.configure(config.directory)
        self.context.resolver.apply(config.resolver)
        if self.context.queue is not None:
            self.context.queue.configure(config.queue, config.dkim, config.report.tls)
        if self.context.acme is not None:
            self.context.acme.configure(config.acme)
        if self._link is not None:
            self._link.forget_removed_sockets()
        log.info("reloaded %s: %s", self.config_path, _summary(report))
        self._announce("reloaded", changes=report.as_dict())
        return report

    def _instantiate_protocols(self) -> None:
        for name, cls in self.protocol_classes.items():
            if name not in self.protocols or type(self.protocols[name]) is not cls:
                self.protocols[name] = cls()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP and self._link is not None:
                    self._link.request_reload()
                elif signum == signal.SIGHUP:
                    log.info("SIGHUP: reloading %s", self.config_path)
                    with contextlib.suppress(ConfigError, ApplyError):
                        await self.reload()
                elif self.context is not None and self.context.draining.is_set():
                    log.warning("second stop signal: closing every session now")
                    assert self._task_group is not None
                    self._task_group.cancel_scope.cancel()
                else:
                    self.stop()

    async def _log_how_to_log_in(self) -> None:
        assert self.context is not None
        admins = [a.address for a in await self.context.store.list_accounts() if a.is_admin]
        log.info(
            "ready: %d listener(s); administrator account(s): %s (a forgotten password: "
            "stalwart-py account passwd ADDRESS --config %s)",
            len(self.config.listeners),
            ", ".join(admins) or "none",
            self.config_path,
        )

    async def _follow_certificates(self, store: Store) -> None:
        """Put in force what another process installed or withdrew (certificates.py)."""
        assert self.context is not None
        with store.changes.watch(CERTIFICATES_CHANNEL) as watch:
            # Read once before the first wait: what another node installed between the
            # start's load() and this watch sent its notification before anyone listened.
            while True:
                try:
                    await self.context.certificates.refresh()
                    if self.context.acme is not None:
                        await self.context.acme.refresh()
                except Exception as error:  # what is in force stays until the next wake-up
                    cause = database_failure(error)
                    if cause is None:
                        log.exception("cannot read the certificates another process installed")
                    else:  # an outage: one line a wake-up (every few seconds while it lasts)
                        log.warning(
                            "cannot read the certificates another process installed: %s", cause
                        )
                await watch.wait()

    async def _watch_certificates(self) -> None:
        """Reload when a certificate file changes (``server.certificate-watch``)."""
        seen = self._certificate_stamps()
        while True:
            interval = self.config.server.certificate_watch
            await anyio.sleep(interval if interval else 60)
            if not interval:
                continue
            current = self._certificate_stamps()
            if current != seen:
                log.info("a certificate file changed: reloading %s", self.config_path)
                with contextlib.suppress(ConfigError, ApplyError):
                    await self.reload(resume=False)
                seen = current

    def _certificate_stamps(self) -> dict[str, tuple[int, int] | None]:
        """(mtime, size) of every certificate and key file: listeners' and [certificate.*]."""
        paths = [p for c in self.config.certificates.values() for p in (c.cert, c.private_key)]
        for listener in self.config.listeners.values():
            for settings in listener.effective.values():
                for path in (settings.tls.certificate, settings.tls.private_key):
                    if path is not None:
                        paths.append(path)
        stamps: dict[str, tuple[int, int] | None] = {}
        for path in paths:
            if str(path) not in stamps:
                try:
                    stat = path.stat()
                    stamps[str(path)] = (stat.st_mtime_ns, stat.st_size)
                except OSError:
                    stamps[str(path)] = None
        return stamps

    def _announce(self, event: str, **details: Any) -> None:
        assert self.registry is not None
        message = {
            "event": event,
            "pid": os.getpid(),
            "generation": self.generation,
            "time": time.time(),
            "listeners": self.registry.status(),
            **details,
        }
        if self.worker is None:  # a worker's events go to the supervisor, which writes it
            _write_atomically(self.config.storage.data_dir / STATUS_FILE, json.dumps(message))
        self._notify(message)

    def _notify(self, message: dict[str, Any]) -> None:
        if self.notify_fd is None:
            return
        try:
            os.write(self.notify_fd, (json.dumps(message) + "\n").encode())
        except OSError:  # whoever listened has gone; the server does not depend on it
            self.notify_fd = None


def administrator_password() -> str | None:
    """The first administrator's password: the file named by $STALWART_ADMIN_PASSWORD_FILE
    (a Docker secret) when it is not empty, else $STALWART_ADMIN_PASSWORD, else None (a
    random one, shown once)."""
    path = os.environ.get("STALWART_ADMIN_PASSWORD_FILE")
    if path:
        try:
            if text := Path(path).read_text().strip():
                return text
        except OSError as exc:
            raise StartupError(
                f"cannot read STALWART_ADMIN_PASSWORD_FILE {path}: {exc.strerror}"
            ) from None
    return os.environ.get("STALWART_ADMIN_PASSWORD") or None


def _announce_administrator(address: str, password: str) -> None:
    """Shown once, on the first start with an empty directory (as Stalwart does)."""
    print(
        f"\nCreated the administrator account {address} with the password\n\n"
        f"    {password}\n\n"
        "It is shown only this once. Change it with: stalwart-py account passwd "
        f"{address}\n",
        file=sys.stderr,
        flush=True,
    )


def _leaves(group: BaseExceptionGroup[ApplyError]) -> Iterator[ApplyError]:
    """The exceptions of a (nested) exception group, as anyio's task groups raise them."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _summary(report: ReloadReport) -> str:
    parts = [f"{what} {', '.join(ids)}" for what, ids in report.as_dict().items() if ids]
    return "; ".join(parts) or "no listener changed"


@contextlib.contextmanager
def _locked_pid_file(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the pid file for the server's lifetime."""
    fd = open_private(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StartupError(
                f"another stalwart-py server (pid {other}) is using {path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def read_pid(data_dir: Path) -> int | None:
    """The pid of the server running on ``data_dir``, or None when none runs."""
    path = data_dir / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # locked: a server holds it
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_status(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    try:
        write_private(path, text.encode())
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc.strerror)


def _warn_if_loose(data_dir: Path) -> None:
    """Name what others may read in the data directory (a directory made by an older version,
    or by hand under the usual umask); left as it is, since it is the operator's."""
    loose = loose_entries(data_dir)
    for path, mode in loose[:MAX_LOOSE_SHOWN]:
        wanted = DIRECTORY_MODE if path.is_dir() else FILE_MODE
        log.warning(
            "%s is mode %04o: the data directory holds all mail and the password verifiers, "
            "so only the server's user should reach it (chmod %o %s)",
            path,
            mode,
            wanted,
            path,
        )
    if len(loose) > MAX_LOOSE_SHOWN:
        log.warning(
            "%d more entries of %s are readable by others", len(loose) - MAX_LOOSE_SHOWN, data_dir
        )
