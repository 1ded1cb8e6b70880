"""Real milters from Debian for the interop tier: rspamd's proxy worker in milter mode
(scanning in-process, ``self_scan``) and OpenDKIM, each started in a temporary directory with
a configuration of its own, on an ephemeral port, and stopped afterwards."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require_tool
from tests.support.servers import free_port

# rspamd compiles its regular expressions (hyperscan) at start, which takes a minute on a busy
# machine; the compiled databases are kept here between runs, keyed by their content.
HS_CACHE = Path("/var/tmp/stalwart-py-rspamd-hs")

RSPAMD_CONF = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    hs_cache_dir = "{hs_cache}";
    dns {{ timeout = 1s; retransmits = 1; }}
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "info";
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    timeout = 120s;
    upstream "local" {{ default = yes; self_scan = yes; }}
    count = 1;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}}
"""

# Which headers rspamd adds through the milter (its milter_headers module), for local and
# authenticated senders too: the test client connects from 127.0.0.1.
MILTER_HEADERS = """\
use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", "x-spam-status"];
skip_local = false;
skip_authenticated = false;
"""


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until ``port`` accepts a connection (the daemon is ready), or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)  # ok: polling a port that is not open yet: nothing to wait on instead
    raise RuntimeError(f"not listening after {timeout} s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    except OSError:
        return "(no log)"


@contextmanager
def running(command: list[str], port: int, log: Path, timeout: float) -> Iterator[int]:
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, log, timeout)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def rspamd(directory: Path) -> Iterator[int]:
    """rspamd's proxy in milter mode; yields its port."""
    binary = require_tool("rspamd")
    port = free_port()
    for sub in ("db", "local.d"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    HS_CACHE.mkdir(parents=True, exist_ok=True)
    (directory / "rspamd.conf").write_text(RSPAMD_CONF.format(port=port, hs_cache=HS_CACHE))
    (directory / "local.d" / "milter_headers.conf").write_text(MILTER_HEADERS)
    command = [
        binary,
        "-f",  # in the foreground
        "-i",  # as root in CI: its workers too
        "-c",
        str(directory / "rspamd.conf"),
        f"--var=LOCAL_CONFDIR={directory}",
        f"--var=DBDIR={directory / 'db'}",
        f"--var=RUNDIR={directory}",
        f"--var=LOGDIR={directory}",
    ]
    with running(command, port, directory / "rspamd.log", timeout=300) as ready:
        yield ready


@contextmanager
def opendkim(directory: Path, domain: str, selector: str, private_pem: bytes) -> Iterator[int]:
    """OpenDKIM signing mail from ``domain`` (clients on loopback are internal); yields its
    port."""
    binary = require_tool("opendkim")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "dkim.private"
    key.write_bytes(private_pem)
    key.chmod(0o600)
    (directory / "opendkim.conf").write_text(
        f"""\
Domain {domain}
Selector {selector}
KeyFile {key}
Canonicalization relaxed/relaxed
Mode s
InternalHosts 127.0.0.1
Socket inet:{port}@127.0.0.1
Background no
Syslog no
RequireSafeKeys no
PidFile {directory / "opendkim.pid"}
"""
    )
    command = [binary, "-f", "-x", str(directory / "opendkim.conf")]
    with running(command, port, directory / "opendkim.log", timeout=60) as ready:
        yield ready
