"""The supervisor: one process owns the configuration and the listening sockets, and
``server.workers`` worker processes accept on them (``server.workers = 1`` runs no supervisor:
the one process is the server, as it always was).

Why fork and not spawn. The supervisor forks each worker from a process that has never run an
event loop nor started a thread (it waits with ``selectors`` and the signal wake-up fd), which
is the case where fork is safe. Forking then gives the worker everything it needs at no cost:
the listening sockets (inherited, no SCM_RIGHTS at start), the loaded and validated
configuration, and every imported module (protocols included), shared copy-on-write; a worker
is serving within milliseconds of its fork, so a crashed one is replaced fast. Spawning with
``pass_fds`` would re-import the server in each worker (a few hundred ms and its own copy of
every module) and re-load the configuration file, which may have changed since it was checked.

What the supervisor does, and the one place each thing happens:

* Start: hold the pid file (a second server on the data directory is refused), bind every
  enabled listener once with ``sockets.open_listening_socket`` (the call the registry makes in
  one process; the first failure is the start-up error, said once), start worker 0 and wait for
  its ``initialised`` (it migrates the schema and creates the first administrator, which N
  processes at once would race on), then the others, beside the rest of its start. A worker's
  start-up error goes to the supervisor, which says the first one once. When all are ready it
  announces ``ready`` (status file and ``--notify-fd``, as one process does), listing what the
  workers listen on.
* Faults: SIGCHLD -> a dead worker is logged and replaced by a new fork with the same index
  (after ``RESTART_BACKOFF`` when it died young, so a worker that cannot start does not spin).
  The supervisor dying takes the workers with it (``worker.die_with_parent``).
* Reload (SIGHUP, ``stalwart-py reload``, a worker's ``POST /api/reload``): the file is loaded
  and validated once, here, and new addresses are bound here; a failure changes nothing in any
  worker. Then every worker gets ``{"cmd": "reload"}`` over its channel, with the new sockets
  attached (SCM_RIGHTS), and applies the configuration the supervisor checked; the outcome is
  announced when all have answered.
* Stop (SIGTERM, SIGINT): SIGTERM to every worker, each draining within
  ``server.shutdown-timeout``; the supervisor closes its copies of the sockets so that the
  kernel stops queueing connections nobody will accept; a worker still there
  ``STOP_MARGIN`` seconds after the grace period is killed.

Each worker talks to the supervisor over a SOCK_SEQPACKET socket pair (one message is one JSON
object; descriptors ride along): up, the events ``--notify-fd`` carries (``ready``,
``reloaded``, ``reload-failed``, ``stopping``) and ``reload-request``; down, ``reload`` and
``reload-done`` (every worker applied it) or ``reload-refused`` (``invalid`` when the file
itself was: the worker raises ConfigError) to a worker that asked.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import anyio

from stalwart_py.config import Config, ConfigError, LoggingSettings
from stalwart_py.config.running import needs_restart
from stalwart_py.files import private_dir, private_umask, write_private
from stalwart_py.metrics import forget_process, prepare_multiprocess, use_multiprocess
from stalwart_py.server import (
    PID_FILE,
    STATUS_FILE,
    Server,
    StartupError,
    _locked_pid_file,
    _warn_if_loose,
    load,
)
from stalwart_py.shared import FILE as SHARED_FILE
from stalwart_py.shared import SharedState
from stalwart_py.shared_limits import SharedLimits
from stalwart_py.singleton import run_dir
from stalwart_py.sockets import (
    BindError,
    open_listening_socket,
    remove_unix_socket,
    unix_socket_identity,
)
from stalwart_py.worker import SocketKey, WorkerRole, die_with_parent

log = logging.getLogger("stalwart_py.supervisor")

RESTART_BACKOFF = 1.0  # seconds before replacing a worker that died within YOUNG of its start
YOUNG = 5.0
STOP_MARGIN = 5.0  # seconds past server.shutdown-timeout before a worker is killed
MAX_MESSAGE = 1 << 20
METRICS_DIR = "metrics"  # under <data-dir>/run/
SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(eq=False)
class WorkerSlot:
    """One place for a worker; its process changes when it is replaced."""

    index: int
    pid: int | None = None
    channel: socket.socket | None = None  # the supervisor's end
    started: float = 0.0
    ready: bool = False
    initialised: bool = False  # worker 0: migrated and made the administrator
    restart_at: float | None = None
    answer: dict[str, Any] | None = None  # its answer to the reload under way


class Supervisor:
    """See the module docstring. ``run()`` returns the process's exit status."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        *,
        notify_fd: int | None = None,
        configure_logging: Callable[[LoggingSettings], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.notify_fd = notify_fd
        self.configure_logging = configure_logging
        self.count = config.server.worker_count
        self.slots = [WorkerSlot(i) for i in range(self.count)]
        self.sockets: dict[SocketKey, socket.socket] = {}
        self._unix: dict[SocketKey, tuple[int, int] | None] = {}
        self.generation = 0
        self.stopping = False
        self.announced_ready = False
        self._selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._reload_waiters: list[WorkerSlot] = []  # asked over their channel
        self._reloading: Config | None = None
        self._reload_changes: dict[str, list[str]] = {}
        self._listeners: list[dict[str, Any]] = []

    # -- start and the main loop --------------------------------------------------------

    def run(self) -> int:
        data_dir = self.config.storage.data_dir
        try:
            private_dir(data_dir)
        except OSError as exc:
            raise StartupError(
                f"cannot create the data directory {data_dir}: {exc.strerror or exc}"
            ) from None
        _warn_if_loose(data_dir)
        with _locked_pid_file(data_dir / PID_FILE):
            try:
                self._bind(self.config)
            except BindError as exc:
                self._close_sockets()
                raise StartupError(str(exc)) from None
            self.shared_path = run_dir(data_dir) / SHARED_FILE
            self.shared = SharedState(self.shared_path, create=True)
            # Per-client counts (per-IP and peer-scope limits, login throttle, SMTP rates):
            # inherited by every worker forked from here, and outliving any one of them.
            self.limits = SharedLimits.create(self.config, workers=self.count)
            # Every worker's metric files, merged by whichever worker answers /metrics.
            self.metrics_dir = run_dir(data_dir) / METRICS_DIR
            prepare_multiprocess(self.metrics_dir)
            self._install_signals()
            preload(self.config)
            try:
                return self._loop()
            finally:
                self._close_sockets()
                self._notify({"event": "stopped"})

    def _loop(self) -> int:
        self._start(self.slots[0])
        while not self.stopping or any(slot.pid is not None for slot in self.slots):
            now = time.monotonic()
            # Worker 0 first at start, the others once it has migrated the schema and made the
            # administrator; once the server is up, any dead worker, worker 0 included, is
            # replaced.
            if (self.slots[0].initialised or self.announced_ready) and not self.stopping:
                for slot in self.slots:
                    if slot.pid is None and (slot.restart_at or 0) <= now:
                        self._start(slot)
            timeout = self._next_timeout(now)
            for key, _ in self._selector.select(timeout):
                self._on_ready(key)
            if self.stopping and time.monotonic() > self._kill_at:
                for slot in self.slots:
                    if slot.pid is not None:
                        log.warning("worker %d (pid %d) did not stop: killed", slot.index, slot.pid)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(slot.pid, signal.SIGKILL)
                self._kill_at = float("inf")
        # a failed start has stopped the others; all are reaped before the supervisor goes,
        # and only then is the error said, so that it is the last line whatever they logged
        if self._startup_error is not None:
            print(f"stalwart-py: cannot start: {self._startup_error}", file=sys.stderr, flush=True)
        return self._startup_failed if self._startup_failed is not None else 0

    def _on_ready(self, key: selectors.SelectorKey) -> None:
        if key.fileobj is self._wakeup_r:
            self._handle_signals()
        # A SIGCHLD earlier in the same batch may have reaped this worker and closed the
        # channel the event was for (seen at shutdown: both workers' ends became readable).
        elif key.data.channel is key.fileobj:
            self._read_channel(key.data)

    _startup_failed: int | None = None
    _startup_error: str | None = None  # the first worker's, said once all are reaped
    _kill_at = float("inf")

    def _next_timeout(self, now: float) -> float:
        times = [slot.restart_at for slot in self.slots if slot.pid is None and slot.restart_at]
        if self.stopping and self._kill_at != float("inf"):
            times.append(self._kill_at)
        return max(0.0, min(times) - now) if times else 1.0

    def _install_signals(self) -> None:
        self._wakeup_r.setblocking(False)
        self._wakeup_w.setblocking(False)
        signal.set_wakeup_fd(self._wakeup_w.fileno())
        for signum in SIGNALS:
            signal.signal(signum, lambda *_: None)  # the wake-up fd carries the number
        self._selector.register(self._wakeup_r, selectors.EVENT_READ)

    def _handle_signals(self) -> None:
        try:
            received = self._wakeup_r.recv(256)
        except BlockingIOError:
            return
        for signum in received:
            if signum == signal.SIGCHLD:
                self._reap()
            elif signum == signal.SIGHUP:
                log.info("SIGHUP: reloading %s", self.config_path)
                self._reload()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self.stop()

    # -- workers ------------------------------------------------------------------------

    def _start(self, slot: WorkerSlot) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is its own process
            ours.close()
            self._become_worker(slot.index, theirs)
        theirs.close()
        ours.setblocking(False)
        slot.pid, slot.channel, slot.started, slot.ready = pid, ours, time.monotonic(), False
        slot.restart_at = None
        self._selector.register(ours, selectors.EVENT_READ, slot)
        log.info("worker %d started (pid %d)", slot.index, pid)

    def _become_worker(self, index: int, channel: socket.socket) -> NoReturn:
        """In the child: drop the supervisor's signal handling and descriptors, then serve."""
        code = 70
        try:
            signal.set_wakeup_fd(-1)
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            self._selector.close()
            self._wakeup_r.close()
            self._wakeup_w.close()
            for slot in self.slots:
                if slot.channel is not None:
                    slot.channel.close()
            if self.notify_fd is not None:  # the supervisor's to whoever started it
                with contextlib.suppress(OSError):
                    os.close(self.notify_fd)
            supervisor = os.getppid()
            die_with_parent(supervisor)
            tag_log_records(index)
            use_multiprocess(self.metrics_dir)
            shared = SharedState(self.shared_path, worker=index)
            role = WorkerRole(
                index,
                supervisor,
                dict(self.sockets),
                channel,
                shared,
                self.limits.for_worker(index),
            )
            server = Server(
                self.config_path, config=self.config, notify_fd=channel.fileno(), worker=role
            )
            server.configure_logging = self.configure_logging
            with private_umask():
                anyio.run(lambda: server.run(handle_signals=True))
            code = 0
        except StartupError as exc:
            try:  # the supervisor says it, once for all the workers that hit it
                channel.send(json.dumps({"event": "failed", "error": str(exc)}).encode())
            except OSError:
                print(f"stalwart-py: cannot start: {exc}", file=sys.stderr, flush=True)
            code = 1
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            # what it said before it died (a start-up error) may still wait in the channel
            while slot.channel is not None and self._read_channel(slot):
                pass
            if slot.channel is not None:
                self._selector.unregister(slot.channel)
                slot.channel.close()
            was_ready, slot.pid, slot.channel, slot.ready = slot.ready, None, None, False
            if slot in self._reload_waiters:
                self._reload_waiters.remove(slot)
            if self.stopping:
                if self._startup_failed is None:  # else the start-up error stays the last line
                    log.info("worker %d (pid %d) stopped", slot.index, pid)
                continue
            if not self.announced_ready and not was_ready:
                if self._startup_error is None:  # else the error's one line says it all
                    log.error("worker %d (pid %d) %s before it was ready", slot.index, pid, how)
                self._startup_failed = code if code > 0 else 1
                self.stop()
                continue
            self.shared.clear_worker(slot.index)  # its connections died with it
            self.limits.connections.clear_worker(slot.index)
            forget_process(self.metrics_dir, pid)  # its live gauges; its counters stay
            young = time.monotonic() - slot.started < YOUNG
            slot.restart_at = time.monotonic() + (RESTART_BACKOFF if young else 0.0)
            log.error("worker %d (pid %d) %s; starting another", slot.index, pid, how)
            if self._reloading is not None:
                self._maybe_finish_reload()

    def stop(self) -> None:
        """SIGTERM to every worker; each drains within server.shutdown-timeout."""
        if self.stopping:
            return
        self.stopping = True
        self._notify({"event": "stopping"})
        for slot in self.slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGTERM)
        # The workers hold their own copies; with ours closed the sockets go when theirs do.
        self._close_sockets(unlink=False)
        self._kill_at = time.monotonic() + self.config.server.shutdown_timeout + STOP_MARGIN

    # -- messages from workers ----------------------------------------------------------

    def _read_channel(self, slot: WorkerSlot) -> bool:
        """One message from the worker handled; False when none was waiting."""
        assert slot.channel is not None
        try:
            data = slot.channel.recv(MAX_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:  # it is exiting; SIGCHLD follows
            self._selector.unregister(slot.channel)
            slot.channel.close()
            slot.channel = None
            slot.ready = False
            return False
        for line in data.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self._on_message(slot, message)
        return True

    def _on_message(self, slot: WorkerSlot, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "initialised":
            slot.initialised = True
        elif event == "failed":  # a start-up error: the first is said once, as one process does
            if self.announced_ready:
                log.error("worker %d could not start: %s", slot.index, message.get("error"))
            elif self._startup_error is None:
                self._startup_error = str(message.get("error"))
        elif event == "ready":
            slot.ready = True
            if self.announced_ready:  # a replacement
                log.info("worker %d (pid %s) ready", slot.index, slot.pid)
                self._notify({"event": "worker-ready", "index": slot.index, "pid": slot.pid})
            if slot.index == 0 or not self._listeners:
                self._listeners = message.get("listeners", [])
            if not self.announced_ready and all(s.ready for s in self.slots):
                self.announced_ready = True
                log.info("ready: %d workers", self.count)
                self._announce("ready")
        elif event in ("reloaded", "reload-failed") and self._reloading is not None:
            slot.answer = message
            self._maybe_finish_reload()
        elif event == "reload-request":
            self._reload_waiters.append(slot)
            self._reload()

    # -- reload ---------------------------------------------------------------------------

    def _reload(self) -> None:
        """Validate once; bind what is new; then have every worker apply it (module doc)."""
        if self._reloading is not None or self.stopping:
            return  # one at a time; the one under way reads the file as it is now anyway
        self.generation += 1
        try:
            config = load(self.config_path, serving=True)
            if problems := needs_restart(self.config, config):
                raise ConfigError(problems)
            new = self._bind(config)
        except (ConfigError, BindError) as exc:
            errors = [str(i) for i in exc.issues] if isinstance(exc, ConfigError) else [str(exc)]
            for error in errors:
                log.error("reload failed, nothing changed: %s", error)
            self._announce("reload-failed", errors=errors)
            # "invalid": the worker that asked answers as one process does for a bad file
            # (POST /api/reload: "the configuration is invalid"), not "cannot be applied"
            invalid = isinstance(exc, ConfigError)
            self._answer_waiters({"cmd": "reload-refused", "errors": errors, "invalid": invalid})
            return
        if config.server.worker_count != self.count:
            log.warning(
                "server.workers changed to %d: that needs a restart", config.server.worker_count
            )
        self._reloading = config
        for slot in self.slots:
            slot.answer = None
            if slot.channel is not None:
                self._send(slot, {"cmd": "reload"}, new)
        self._maybe_finish_reload()

    def _maybe_finish_reload(self) -> None:
        config = self._reloading
        assert config is not None
        live = [slot for slot in self.slots if slot.channel is not None]
        if any(slot.answer is None for slot in live):
            return
        self._reloading = None
        answers = [slot.answer for slot in live if slot.answer is not None]
        failed = [answer for answer in answers if answer["event"] != "reloaded"]
        if failed:
            errors = sorted({e for answer in failed for e in answer.get("errors", [])})
            self._announce("reload-failed", errors=errors)
            self._answer_waiters({"cmd": "reload-refused", "errors": errors})
            return
        self.config = config
        wanted = {(lid, a) for lid, lsn in config.listeners.items() if lsn.enable for a in lsn.bind}
        for key in [key for key in self.sockets if key not in wanted]:
            self._close_socket(key)  # every worker has closed its copy
        first = live[0].answer if live else None
        if first is not None:
            self._listeners = first.get("listeners", self._listeners)
        self._announce("reloaded", changes=(first or {}).get("changes", {}))
        # Whoever asked (POST /api/reload) answers now that every worker has applied it and
        # the sockets of removed addresses are closed, as one process answers after its reload.
        self._answer_waiters({"cmd": "reload-done"})

    def _answer_waiters(self, message: dict[str, Any]) -> None:
        for slot in self._reload_waiters:
            if slot.channel is not None:
                self._send(slot, message)
        self._reload_waiters.clear()

    def _send(
        self,
        slot: WorkerSlot,
        message: dict[str, Any],
        sockets: dict[SocketKey, socket.socket] | None = None,
    ) -> None:
        assert slot.channel is not None
        keys = list(sockets or {})
        body = {**message, "sockets": [[lid, a.family, a.host, a.port] for lid, a in keys]}
        fds = [sockets[key].fileno() for key in keys] if sockets else []
        try:
            slot.channel.setblocking(True)
            socket.send_fds(slot.channel, [json.dumps(body).encode()], fds)
        except OSError as exc:
            log.warning("cannot reach worker %d: %s", slot.index, exc)
        finally:
            slot.channel.setblocking(False)

    # -- sockets --------------------------------------------------------------------------

    def _bind(self, config: Config) -> dict[SocketKey, socket.socket]:
        """Bind every enabled address of ``config`` not bound yet (``bind_listeners``)."""
        new = bind_listeners(config, self.sockets, self._unix)
        self.sockets.update(new)
        return new

    def _close_socket(self, key: SocketKey, *, unlink: bool = True) -> None:
        self.sockets.pop(key).close()
        if unlink and key[1].is_unix:
            remove_unix_socket(key[1].host, self._unix.pop(key, None))

    def _close_sockets(self, *, unlink: bool = True) -> None:
        for key in list(self.sockets):
            self._close_socket(key, unlink=unlink)
        if unlink:  # what stop() left for the end
            for key, identity in list(self._unix.items()):
                remove_unix_socket(key[1].host, identity)
            self._unix.clear()

    # -- status ---------------------------------------------------------------------------

    def _announce(self, event: str, **details: Any) -> None:
        message = {
            "event": event,
            "pid": os.getpid(),
            "generation": self.generation,
            "time": time.time(),
            "listeners": self._listeners,
            "workers": [slot.pid for slot in self.slots],
            **details,
        }
        path = self.config.storage.data_dir / STATUS_FILE
        try:
            write_private(path, json.dumps(message).encode())
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc.strerror)
        self._notify(message)

    def _notify(self, message: dict[str, Any]) -> None:
        if self.notify_fd is None:
            return
        try:
            os.write(self.notify_fd, (json.dumps(message) + "\n").encode())
        except OSError:
            self.notify_fd = None


def bind_listeners(
    config: Config,
    bound: dict[SocketKey, socket.socket],
    unix: dict[SocketKey, tuple[int, int] | None],
) -> dict[SocketKey, socket.socket]:
    """Bind every enabled address of ``config`` that is not in ``bound`` yet, the one way a
    supervisor makes listening sockets (the test kit's sibling workers too); a Unix socket's
    identity goes into ``unix`` so that only our own file is removed later. On a failure close
    what this call bound and raise BindError. Returns what it bound."""
    new: dict[SocketKey, socket.socket] = {}
    try:
        for listener in config.listeners.values():
            if not listener.enable:
                continue
            for address in listener.bind:
                key = (listener.id, address)
                if key in bound or key in new:
                    continue
                new[key] = open_listening_socket(address, listener.settings.socket)
                if address.is_unix:
                    unix[key] = unix_socket_identity(address.host)
    except BindError:
        for key, sock in new.items():
            sock.close()
            if key[1].is_unix:
                remove_unix_socket(key[1].host, unix.pop(key, None))
        raise
    return new


def tag_log_records(index: int) -> None:
    """Every log record of this worker carries ``worker=<index>`` (an extra field, which both
    log formats show), so that an operator can tell the workers' lines apart."""
    factory = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.worker = index
        return record

    logging.setLogRecordFactory(tagged)


def preload(config: Config) -> None:
    """Import here, once, what every worker imports as it starts, so that each fork shares it
    instead of importing it again (worker 0 alone first, then the others, each on the clock
    of the start): anyio's asyncio backend, which the first ``anyio.run`` loads (and the
    supervisor never runs one), and the store's backend, which ``create_store`` loads.
    Importing starts no thread and no event loop, so forking stays safe."""
    importlib.import_module("anyio._backends._asyncio")
    if config.storage.backend == "sqlite":
        importlib.import_module("stalwart_py.store.sqlite")
