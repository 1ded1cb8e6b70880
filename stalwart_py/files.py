"""Files made from names: paths that stay inside their directory, and small files written
safely (atomically, durably, and readable by their owner only)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: mode 0600 from the start, fsync'd before the rename,
    so a reader sees the old file or the whole new one and nobody else can read a key."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
