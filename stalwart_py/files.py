"""Files the server keeps: written atomically and durably, readable by their owner only, and
made from names only through ``safe_join``, which proves a path stays inside its directory.

The data directory holds every message and the password verifiers, so everything stalwart-py
creates in it (the database with its -wal and -shm files, certificates and keys, the pid and
status files, the control socket) is 0600 in directories that are 0700, whatever the umask it
was started under. The modes are set explicitly where each file is made; ``private_umask``
is the second line of defence for what a library creates (SQLite, a socket file) and for
whatever is added later. What exists already is the operator's: ``loose_entries`` names it so
the server can warn, and nothing is changed behind their back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
# The entries ``loose_entries`` looks at: the data directory is a few dozen files; this only
# bounds the walk of a directory someone filled with something else.
MAX_ENTRIES_CHECKED = 10_000


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: mode 0600 from the start, fsync'd before the rename,
    so a reader sees the old file or the whole new one and nobody else can read a key."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parent, each 0700; directories that exist already
    are left as they are (``loose_entries`` reports them)."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            directory.mkdir(mode=DIRECTORY_MODE)
            # mkdir's mode passes through the umask; a umask such as 0o277 would leave the
            # directory unusable, one such as 0o002 is no concern, but say exactly what we mean.
            os.chmod(directory, DIRECTORY_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists, so that the library that then opens
    it (SQLite, which also gives its -wal and -shm files the database's mode) keeps that mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
    finally:
        os.close(fd)


def open_private(path: Path) -> int:
    """A read-write descriptor of ``path``, created 0600 if missing (a lock or pid file: the
    modes of the data directory hold for these too); close-on-exec, so no child inherits a lock."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run with umask 077: what is created without an explicit mode is private too."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def loose_entries(directory: Path) -> list[tuple[Path, int]]:
    """``directory`` and what is under it that its group or others may use, with the mode
    bits: directories wider than 0700 and files wider than 0600. Symbolic links are not
    followed and sockets are left out (a Unix listener's mode is ``socket.file-mode``)."""
    paths = itertools.chain(
        [directory],
        (Path(root, name) for root, dirs, files in os.walk(directory) for name in dirs + files),
    )
    found = []
    for path in itertools.islice(paths, MAX_ENTRIES_CHECKED):
        try:
            mode = path.lstat().st_mode
        except OSError:  # gone meanwhile
            continue
        if not (stat.S_ISLNK(mode) or stat.S_ISSOCK(mode)) and stat.S_IMODE(mode) & 0o077:
            found.append((path, stat.S_IMODE(mode)))
    return found


def safe_join(base: Path, *parts: str) -> Path:
    """``base / part / ...``, proven to stay inside ``base``: each part must be one plain path
    component (not empty, not ``.`` or ``..``, without a separator or NUL), and the result,
    with symbolic links resolved as far as they exist, must still be under ``base`` resolved.
    A name a client gave (a domain, a selector) becomes a file name only through this;
    ValueError says which part was refused."""
    path = base
    for part in parts:
        if (
            not part
            or part in (".", "..")
            or "/" in part
            or "\0" in part
            or (os.altsep is not None and os.altsep in part)
        ):
            raise ValueError(f"{part!r} cannot be a file name: it must be one plain path component")
        path = path / part
    root = base.resolve()
    if not path.resolve().is_relative_to(root):
        raise ValueError(f"{path} is outside {base}")
    return path
