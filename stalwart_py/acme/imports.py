"""ACME files of earlier versions into the store, once (the first start after an upgrade).

Earlier versions kept the account key in ``<data-dir>/acme/<id>/account.key`` and installed
certificates in ``<data-dir>/certificates/<id>/{cert,key}.pem``. Without this import an
upgraded server would order every certificate again at its first start (and count against
the CA's rate limits) under a new account. A row the store has already (another node imported
or ordered it) is kept. The directories are then renamed ``*.imported``: kept, not deleted,
since they are the operator's.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from stalwart_py.store.base_shared_state import SharedStateStore

log = logging.getLogger("stalwart_py.acme")

CERTIFICATES_DIR = "certificates"
ACME_DIR = "acme"


async def import_acme_files(store: SharedStateStore, data_dir: Path) -> int:
    """Import what is there; returns the number of certificates and keys looked at."""
    found = 0
    certificates = data_dir / CERTIFICATES_DIR
    if certificates.is_dir():
        installed = {c.id for c in await store.installed_certificates()}
        for directory in sorted(p for p in certificates.iterdir() if p.is_dir()):
            try:
                chain = (directory / "cert.pem").read_bytes()
                key = (directory / "key.pem").read_bytes()
            except OSError:
                continue
            found += 1
            if directory.name not in installed:
                await store.install_certificate(directory.name, chain, key)
        _set_aside(certificates)
    accounts = data_dir / ACME_DIR
    if accounts.is_dir():
        for directory in sorted(p for p in accounts.iterdir() if p.is_dir()):
            try:
                key = (directory / "account.key").read_bytes()
            except OSError:
                continue  # http-01/, tls-alpn-01/: answers of orders long over
            found += 1
            await store.acme_account(directory.name, key)  # the store's, if it has one
        _set_aside(accounts)
    if found:
        log.info("ACME: %d certificate(s) and account key(s) imported into the store", found)
    return found


def _set_aside(directory: Path) -> None:
    target = directory.with_name(f"{directory.name}.imported")
    if target.exists():
        target = directory.with_name(f"{directory.name}.imported-{int(time.time())}")
    directory.rename(target)
