"""TLS server contexts from PEM held in memory (certificates kept in the store, not in files).

Python's ``SSLContext.load_cert_chain`` reads only paths. A chain and key from the database are
handed to it as anonymous memory files (``memfd_create``: never on a disk, gone when closed,
reached through ``/proc/self/fd``); where there is none, as 0600 temporary files removed at
once. The context is built when the set of certificates changes (start, install, another
node's notification), never during a handshake.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator


class PemError(Exception):
    """A chain or key that OpenSSL does not take; the message says why (never the key)."""


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("stalwart-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="stalwart-pem-")  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        os.unlink(path)


def load_pem_chain(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """Load a PEM chain (leaf first) and its key into ``context``; PemError if unusable."""
    with _memory_file(chain) as cert_path, _memory_file(key) as key_path:
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise PemError(f"the chain and key cannot be used: {exc.reason or exc}") from None


def context_from_pem(chain: bytes, key: bytes, *, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A server context holding one chain, for the SNI callback to swap in."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_pem_chain(context, chain, key)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
