"""``stalwart-py serve``, ``check-config`` and ``reload``."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from stalwart_py.config import ConfigError, LoggingSettings, explain
from stalwart_py.files import private_umask
from stalwart_py.logs import configure_logging
from stalwart_py.server import Server, StartupError, load, read_pid, read_status
from stalwart_py.tls import TLSSetupError, build_context

log = logging.getLogger("stalwart_py.server")

RELOAD_WAIT = 30.0


def register(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    serve = command("serve", "Run the server in the foreground.")
    serve.add_argument("--log-format", choices=["text", "json"], default=None)
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    serve.add_argument(
        "--notify-fd",
        type=int,
        default=None,
        metavar="FD",
        help="write JSON lines (ready, reloaded, reload-failed, stopping) to this descriptor",
    )
    serve.add_argument(
        "--init-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="when the configuration file does not exist, create it as a copy of FILE first "
        "(a container's first start on an empty volume)",
    )
    serve.set_defaults(run=cmd_serve)

    check = command("check-config", "Validate the configuration; exit 1 on any error.")
    check.add_argument(
        "--explain",
        action="store_true",
        help="print every listener's effective settings and where each value came from",
    )
    check.set_defaults(run=cmd_check_config)

    reload = command("reload", "Make the running server re-read its configuration.")
    reload.set_defaults(run=cmd_reload)

    health = command("health", "Exit 0 when the server runs and is ready (for HEALTHCHECK).")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds (default: 5)")
    health.set_defaults(run=cmd_health)


def cmd_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "info", args.log_format or "text")
    if args.init_config is not None and not args.config.exists():
        try:
            args.config.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.init_config, args.config)
        except OSError as exc:
            print(f"stalwart-py: cannot create {args.config}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"stalwart-py: created {args.config} from {args.init_config}", file=sys.stderr)
    try:
        server = Server(args.config, notify_fd=args.notify_fd)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1

    def apply_logging(settings: LoggingSettings) -> None:
        # The command line wins over the file, at start and on every reload.
        configure_logging(args.log_level or settings.level, args.log_format or settings.format)

    server.configure_logging = apply_logging
    apply_logging(server.config.logging)
    raise_open_file_limit()
    # What is loaded by now (every module, the configuration) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it again and again.
    gc.freeze()
    # The store's writer thread lets go of the GIL around every SQLite step and fsync; with
    # the default 5 ms switch interval it then waits for the event loop's thread that long
    # to take it back, and every acknowledgement waits with it. Measured with
    # bench/smtp_throughput.py (16 clients): about 10% more messages a second at 0.5 ms.
    sys.setswitchinterval(0.0005)
    try:
        # Belt to the explicit modes of every file in the data directory: what a library
        # makes without one is private too. (A Unix listener without socket.file-mode is
        # then 0600 as well.)
        with private_umask():
            if server.config.server.worker_count > 1:
                from stalwart_py.supervisor import Supervisor  # one process needs none

                supervisor = Supervisor(
                    args.config,
                    server.config,
                    notify_fd=args.notify_fd,
                    configure_logging=apply_logging,
                )
                return supervisor.run()
            anyio.run(lambda: server.run(handle_signals=True))
    except StartupError as exc:
        print(f"stalwart-py: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def raise_open_file_limit() -> None:
    """Every session is a descriptor (ten thousand clients in IDLE are ten thousand), and the
    usual soft limit is 1024: take the hard limit the system allows, as Dovecot and Postfix
    do. Workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return
    log.debug("open-file limit raised from %d to %d", soft, hard)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load(args.config, serving=True)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        count = len(exc.issues)
        print(f"{args.config}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    problems = []
    for listener in config.listeners.values():
        for settings in listener.effective.values():
            tls = settings.tls
            if tls.certificate is not None and tls.private_key is not None:
                try:
                    build_context(tls.certificate, tls.private_key, tls.min_version)
                except TLSSetupError as exc:
                    problems.append(f"{args.config}: server.listener.{listener.id}.tls: {exc}")
    if problems:
        print("\n".join(sorted(set(problems))), file=sys.stderr)
        return 1
    if args.explain:
        print(explain(config), end="")
        return 0
    enabled = [lsn for lsn in config.listeners.values() if lsn.enable]
    print(
        f"{args.config}: valid; {len(enabled)} listener(s) enabled, "
        f"{len(config.listeners) - len(enabled)} disabled"
    )
    for listener in config.listeners.values():
        binds = ", ".join(str(b) for b in listener.bind)
        state = "" if listener.enable else " (disabled)"
        print(f"  {listener.id}: {listener.protocol} on {binds}{state}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        config = load(args.config, serving=True)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print("not reloading: the running server keeps its configuration", file=sys.stderr)
        return 1
    data_dir = config.storage.data_dir
    pid = read_pid(data_dir)
    if pid is None:
        # The server is found through the data directory the file names now; one started
        # before storage.data-dir was changed is on the old one, out of this command's sight.
        print(
            f"no server is running on {data_dir} (a server started before its storage.data-dir "
            "changed still runs on the old one: changing storage.data-dir needs a restart)",
            file=sys.stderr,
        )
        return 1
    before = (read_status(data_dir) or {}).get("generation", -1)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        status = read_status(data_dir) or {}
        if status.get("pid") == pid and status.get("generation", -1) > before:
            if status["event"] == "reload-failed":
                print("reload failed, nothing changed:", file=sys.stderr)
                for problem in status.get("errors", []):
                    print(f"  {problem}", file=sys.stderr)
                return 1
            changes = {k: v for k, v in status.get("changes", {}).items() if v}
            summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in changes.items())
            print(f"reloaded (pid {pid}): {summary or 'no listener changed'}")
            return 0
        time.sleep(0.05)
    print(
        f"sent SIGHUP to pid {pid}, but it did not report back in {RELOAD_WAIT:g}s", file=sys.stderr
    )
    return 1


def cmd_health(args: argparse.Namespace) -> int:
    """Ready means: a server holds the data directory, it reported "ready" (or a reload
    since), and, when it has an http listener, that listener answers GET /readyz with 200."""
    import urllib.error  # for this command only: ~10 ms of every command's start otherwise
    import urllib.request

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    data_dir = config.storage.data_dir
    pid = read_pid(data_dir)
    status = read_status(data_dir) or {}
    if pid is None:
        print(f"unhealthy: no server is running on {data_dir}", file=sys.stderr)
        return 1
    if status.get("pid") != pid or status.get("event") not in (
        "ready",
        "reloaded",
        "reload-failed",
    ):
        print(f"unhealthy: the server (pid {pid}) has not reported ready", file=sys.stderr)
        return 1
    for listener in status.get("listeners", []):
        if listener.get("protocol") != "http" or not listener.get("bind"):
            continue
        url = _readyz_url(listener["bind"][0], listener.get("tls") == "implicit")
        try:
            context = ssl._create_unverified_context()  # our own, maybe self-signed, certificate
            with urllib.request.urlopen(url, timeout=args.timeout, context=context) as answer:
                ready = answer.status == 200
        except (OSError, urllib.error.URLError) as exc:
            print(f"unhealthy: {url}: {exc}", file=sys.stderr)
            return 1
        if not ready:
            print(f"unhealthy: {url} is not ready", file=sys.stderr)
            return 1
        break
    print(f"ok: pid {pid}, {len(status.get('listeners', []))} listener(s)")
    return 0


def _readyz_url(bound: str, tls: bool) -> str:
    host, _, port = bound.rpartition(":")
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "[*]"):
        host = "[::1]"
    return f"{'https' if tls else 'http'}://{host}:{port}/readyz"
