"""DKIM signing of outbound mail (RFC 6376), with dkimpy.

Keys come from two places, and both sign:

* ``[dkim."example.com"]`` in the configuration: ``selector`` and ``private-key``;
* ``<data-dir>/dkim/<domain>/<selector>.pem``: what ``stalwart-py dkim generate`` writes.
  A key file there turns signing on for its domain, with no configuration to edit; removing
  it turns it off. The directory is looked at again whenever it changes, so a key generated
  while the server runs is used from the next message on.

A message is signed by the keys of the domain of its ``From:`` header (what DMARC aligns
with), else of its envelope sender's domain. Canonicalization is relaxed/relaxed; RSA keys
sign with rsa-sha256, Ed25519 keys with ed25519-sha256 (RFC 8463), and a domain with both
gets both signatures, as RFC 8463 recommends for the transition.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stalwart_py import names
from stalwart_py.config.schema import DkimSettings
from stalwart_py.files import private_dir, safe_join, write_private

# dkimpy (with PyNaCl and dnspython under it) and cryptography's key code are imported by the
# first key loaded or message signed, not by every start: most servers sign nothing until a key
# is generated, and together they were ~40 ms of a start's imports.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

log = logging.getLogger("stalwart_py.queue.dkim")

KEY_DIR = "dkim"
ALGORITHMS = ("rsa", "ed25519")


class DkimKeyError(Exception):
    """A key file that cannot be used."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes  # as dkimpy takes it: PKCS#1 PEM (RSA) or the base64 seed (Ed25519)
    public_record: str  # the DNS TXT record's value
    path: Path

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def load_key(domain: str, selector: str, path: Path) -> DkimKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise DkimKeyError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"{path} is not a PEM private key: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, what dkimpy reads
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
        return DkimKey(domain, selector, b"rsa-sha256", private, record, path)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        record = f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
        return DkimKey(domain, selector, b"ed25519-sha256", base64.b64encode(seed), record, path)
    raise DkimKeyError(f"{path}: only RSA and Ed25519 keys can sign DKIM")


def generate_key(
    data_dir: Path,
    domain: str,
    *,
    algorithm: str = "rsa",
    selector: str | None = None,
    bits: int = 2048,
) -> DkimKey:
    """Create a key under ``<data-dir>/dkim/<domain>/``, which turns signing on for ``domain``.
    ``domain`` must be a domain name (``names.domain``; it is used in its A-label form, as
    signing looks it up) and the selector letters, digits and hyphens: both become file names.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    domain = names.domain(domain)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    if selector is None:
        month = datetime.datetime.now(datetime.UTC).strftime("%Y%m")
        selector = f"{'rsa' if algorithm == 'rsa' else 'ed'}{month}"
    if not selector.replace("-", "").isalnum() or not selector.isascii():
        raise ValueError(f"a selector is letters, digits and hyphens, not {selector!r}")
    directory = safe_join(data_dir / KEY_DIR, domain)
    path = safe_join(directory, f"{selector}.pem")
    if path.exists():
        raise ValueError(f"{path} exists already; choose another --selector")
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if algorithm == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_dir(directory)
    write_private(path, pem)
    return load_key(domain, selector, path)


def zone_record(key: DkimKey) -> str:
    """The TXT record in zone-file form, split into strings of at most 255 characters."""
    chunks = [key.public_record[i : i + 250] for i in range(0, len(key.public_record), 250)]
    strings = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{key.record_name}. IN TXT ( {strings} )"


class DkimSigner:
    def __init__(self, configured: dict[str, DkimSettings], data_dir: Path) -> None:
        self.configured = configured
        self.directory = data_dir / KEY_DIR
        self._stamp: tuple[tuple[str, int], ...] | None = None
        self._keys: dict[str, list[DkimKey]] = {}

    def keys(self) -> dict[str, list[DkimKey]]:
        """Every signing key by domain (the data directory re-read when it changed)."""
        stamp = self._directory_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._keys = self._load()
        return self._keys

    def sign(self, message: bytes, mail_from: str) -> bytes:
        """``message`` with DKIM-Signature fields on top, or as it was when no key applies."""
        keys = self.keys()
        if not keys:
            return message
        import dkim

        domain = _from_domain(message) or mail_from.rpartition("@")[2].lower()
        signatures = []
        for key in keys.get(domain, ()):
            try:
                signatures.append(
                    dkim.sign(
                        message,
                        key.selector.encode(),
                        key.domain.encode(),
                        key.private,
                        canonicalize=(b"relaxed", b"relaxed"),
                        signature_algorithm=key.algorithm,
                    )
                )
            except dkim.DKIMException as exc:
                log.error("DKIM signing with %s failed: %s", key.path, exc)
        return b"".join(signatures) + message

    def _load(self) -> dict[str, list[DkimKey]]:
        keys: dict[str, list[DkimKey]] = {}
        found = [(d, s.selector, s.private_key) for d, s in self.configured.items()]
        if self.directory.is_dir():
            for domain_dir in sorted(self.directory.iterdir()):
                if domain_dir.is_dir():
                    found += [
                        (domain_dir.name, p.stem, p) for p in sorted(domain_dir.glob("*.pem"))
                    ]
        for domain, selector, path in found:
            try:
                keys.setdefault(domain, []).append(load_key(domain, selector, path))
            except DkimKeyError as exc:
                log.error("DKIM key not used: %s", exc)
        return keys

    def _directory_stamp(self) -> tuple[tuple[str, int], ...]:
        stamp = []
        try:
            stamp.append((".", os.stat(self.directory).st_mtime_ns))
            for entry in os.scandir(self.directory):
                if entry.is_dir():
                    stamp.append((entry.name, entry.stat().st_mtime_ns))
        except OSError:
            pass
        return tuple(stamp)


def _from_domain(message: bytes) -> str | None:
    import email.parser  # with the policy's header registry: ~15 ms, not at start
    import email.policy
    import email.utils

    end = message.find(b"\r\n\r\n")
    header = message if end < 0 else message[: end + 2]
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header)
    addresses = email.utils.getaddresses(parsed.get_all("From", []))
    for _name, address in addresses:
        if "@" in address:
            return address.rpartition("@")[2].lower()
    return None
