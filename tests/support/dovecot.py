"""A throw-away Dovecot (Debian's dovecot-imapd) on loopback: the peer of the IMAP benchmarks
and the oracle of the differential tests (tests/interop/test_dovecot_differential_*.py).

    with start_dovecot({"alice@example.test": "pw"}) as dovecot:
        imaplib.IMAP4("127.0.0.1", dovecot.port)

Everything lives in a temporary directory of its own: ``base_dir``, ``state_dir``, the
Maildirs (``LAYOUT=fs``, so the hierarchy separator is ``/`` as ours) and a ``passwd-file``
that is both passdb and userdb. Dovecot runs in the foreground (``dovecot -F -c FILE``) and
logs to its stderr, which a thread copies to ``dovecot.log``; it is ready when the master
process logs ``starting up``, which it does after binding its listeners (a connection made
then waits in the backlog for imap-login). As root, the mail processes run as ``nobody``
(Dovecot refuses to serve mail as root); as another user, every process runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import free_port

WAIT = 30.0  # seconds; only reached when something is broken

# The special-use mailboxes every account of ours starts with (stalwart_py/store/model.py),
# created and subscribed the same way in Dovecot so that LIST answers can be compared.
SPECIAL_USE = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}


def binary() -> str | None:
    """The dovecot binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("dovecot") or "/usr/sbin/dovecot"
    return found if Path(found).exists() else None


def doveadm_binary() -> str:
    return shutil.which("doveadm") or "/usr/bin/doveadm"


class Dovecot:
    """A running Dovecot: its port, pid, configuration and log, and what can be done to
    its mail behind its back (Maildir files, doveadm)."""

    def __init__(self, base: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.port = port
        self.process = process
        self.config = base / "dovecot.conf"
        self.log_path = base / "dovecot.log"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def maildir(self, address: str) -> Path:
        local, domain = address.split("@")
        return self.base / "mail" / domain / local / "Maildir"

    def write_messages(self, address: str, messages: Sequence[bytes]) -> None:
        """Put messages into INBOX as Maildir files (``cur/``, no flags), as a delivery
        agent would; run ``doveadm("index", ...)`` afterwards for an indexed start."""
        cur = self.maildir(address) / "cur"
        now = int(time.time())
        for index, data in enumerate(messages):
            path = cur / f"{now}.M{index}P1.dovecot-test:2,"
            path.write_bytes(data)
            _own(path)

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``doveadm -c CONFIG ARGS``; raises with its stderr when it fails."""
        result = subprocess.run(
            [doveadm_binary(), "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=WAIT * 4,
        )
        if result.returncode:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr}")
        return result


def _mail_owner() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())


def _own(path: Path) -> None:
    if os.getuid() == 0:
        owner = _mail_owner()
        os.chown(path, owner.pw_uid, owner.pw_gid)


def hash_password(password: str, scheme: str) -> str:
    """The passwd-file form of a password: ``{PLAIN}pw`` or a hash made by ``doveadm pw``
    (``SHA512-CRYPT``, ``BLF-CRYPT``, ...)."""
    if scheme == "PLAIN":
        return "{PLAIN}" + password
    result = subprocess.run(
        [doveadm_binary(), "pw", "-s", scheme, "-p", password],
        capture_output=True,
        text=True,
        check=True,
        timeout=WAIT,
    )
    return result.stdout.strip()


def configuration(
    base: Path,
    port: int,
    *,
    special_use: Mapping[str, str],
    login_service: str,
    extra: str,
) -> str:
    owner = _mail_owner()
    users = "" if os.getuid() == 0 else f"default_internal_user = {owner.pw_name}\n"
    users += "" if os.getuid() == 0 else f"default_login_user = {owner.pw_name}\n"
    mailboxes = "".join(
        f"  mailbox {name} {{\n    special_use = {use}\n    auto = subscribe\n  }}\n"
        for name, use in special_use.items()
    )
    return f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = /dev/stderr
{users}listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%d/%n/Maildir:LAYOUT=fs
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = passwd-file
  args = {base}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{mailboxes}}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login_service}
}}
{extra}
"""


@contextmanager
def start_dovecot(
    accounts: Mapping[str, str],
    *,
    password_scheme: str = "PLAIN",
    special_use: Mapping[str, str] | None = None,
    login_service: str = "",
    extra: str = "",
) -> Iterator[Dovecot]:
    """Start Dovecot serving IMAP for ``accounts`` (address -> password, stored in
    ``password_scheme``), each with an empty Maildir INBOX and the ``special_use``
    mailboxes, created and subscribed at first login (default: the five ours has, with
    the same names). ``login_service`` goes
    inside ``service imap-login { }``, ``extra`` at the end of the configuration. Stopped
    (SIGTERM, then waited for) and its directory removed on exit."""
    path = binary()
    if path is None:
        raise FileNotFoundError("dovecot is not installed (apt-get install dovecot-imapd)")
    base = Path(tempfile.mkdtemp(prefix="dovecot-"))
    base.chmod(0o755)  # the mail user (nobody, when we are root) must reach its Maildir
    process: subprocess.Popen[bytes] | None = None
    try:
        owner = _mail_owner()
        lines = []
        for address, password in accounts.items():
            local, domain = address.split("@")
            home = base / "home" / domain / local
            lines.append(
                f"{address}:{hash_password(password, password_scheme)}:"
                f"{owner.pw_uid}:{owner.pw_gid}::{home}::"
            )
        (base / "users").write_text("\n".join(lines) + "\n")
        for sub in ("run", "state", "home", "mail"):
            (base / sub).mkdir()
        port = free_port()
        (base / "dovecot.conf").write_text(
            configuration(
                base,
                port,
                special_use=SPECIAL_USE if special_use is None else special_use,
                login_service=login_service,
                extra=extra,
            )
        )
        for address in accounts:
            local, domain = address.split("@")
            for sub in ("cur", "new", "tmp"):
                (base / "mail" / domain / local / "Maildir" / sub).mkdir(parents=True)
            (base / "home" / domain / local).mkdir(parents=True)
        if os.getuid() == 0:
            for sub in ("mail", "home"):
                subprocess.run(
                    ["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", str(base / sub)],
                    check=True,
                )
        process = subprocess.Popen(
            [path, "-F", "-c", str(base / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        dovecot = Dovecot(base, port, process)
        ready = threading.Event()
        copier = threading.Thread(
            target=_copy_log, args=(process, dovecot.log_path, ready), daemon=True
        )
        copier.start()
        if not ready.wait(WAIT) or process.poll() is not None:
            raise RuntimeError(f"dovecot did not start; its log:\n{dovecot.log()}")
        yield dovecot
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


def _copy_log(process: subprocess.Popen[bytes], log_path: Path, ready: threading.Event) -> None:
    """Copy Dovecot's stderr to its log file; set ``ready`` at the master's start line (or
    at the end of its output, so that a failed start is reported at once)."""
    assert process.stderr is not None
    with open(log_path, "ab", buffering=0) as log:
        for line in process.stderr:
            log.write(line)
            if b"master: Info: Dovecot v" in line and b"starting up" in line:
                ready.set()
    ready.set()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
