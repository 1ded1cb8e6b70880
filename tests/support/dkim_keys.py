"""DKIM keys for tests: in the store (as ``stalwart-py dkim generate`` makes them) or as the
key files an earlier version wrote under the data directory (the upgrade path)."""

from __future__ import annotations

from pathlib import Path

from stalwart_py.files import private_dir, write_private
from stalwart_py.queue.dkim import KEY_DIR, STORED, DkimKey, key_from_pem, make_key


def legacy_key_file(
    data_dir: Path, domain: str, selector: str, algorithm: str = "rsa"
) -> tuple[DkimKey, Path]:
    """A key where versions before the store kept them: ``<data-dir>/dkim/<domain>/<s>.pem``;
    the next start (or command) imports it."""
    new = make_key(domain, algorithm=algorithm, selector=selector)
    path = data_dir / KEY_DIR / new.domain / f"{selector}.pem"
    private_dir(path.parent)
    write_private(path, new.private_key)
    return key_from_pem(new.domain, selector, new.private_key, STORED), path


def key_file(path: Path, domain: str, selector: str, algorithm: str = "rsa") -> DkimKey:
    """A key file anywhere (for ``[dkim."<domain>"] private-key``)."""
    new = make_key(domain, algorithm=algorithm, selector=selector)
    private_dir(path.parent)
    write_private(path, new.private_key)
    return key_from_pem(new.domain, selector, new.private_key, str(path))
