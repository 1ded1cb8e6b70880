"""TLS server contexts, and the self-signed certificate used when none is configured.

Like KumoMTA, a listener without a certificate still speaks TLS: a self-signed certificate
for the listener's hostname is generated (and kept under ``<data-dir>/tls`` so that it stays
the same across restarts), with a warning, since clients will not trust it. A reload after
a certificate renewal (by hand, SIGHUP, or ``server.certificate-watch``) loads the new files;
unchanged ones are not read again.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import logging
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from stalwart_py.config import TLSSettings
from stalwart_py.files import open_private, private_dir, safe_join, write_private

if TYPE_CHECKING:
    from stalwart_py.certificates import CertificateStore

log = logging.getLogger("stalwart_py.tls")

SELF_SIGNED_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=30)
# The self-signed certificate's file starts with its expiry, as explanatory text before the
# PEM block (RFC 7468 section 5.2; OpenSSL and cryptography skip it), so that a start finds it
# still valid without cryptography: its x509 package was ~40 ms of every start's imports. A
# file without the line (made before it, or replaced by hand) is parsed as before.
NOT_AFTER_NOTE = b"Not After: "


class TLSSetupError(Exception):
    """A certificate or key that cannot be used."""


class TLSManager:
    """SSL contexts per (certificate, key, minimum version), loaded when a configuration is
    applied (start, reload) and only then: a handshake never reads files, so a renewal that
    is half written, or wrong, cannot break connections; the next reload takes it or keeps
    the previous context and reports why."""

    def __init__(self, data_dir: Path, certificates: CertificateStore | None = None) -> None:
        self.data_dir = data_dir
        # [certificate.*] and installed (ACME) certificates, chosen by SNI in every context
        # made here (stalwart_py/certificates.py); None: the listener's certificate only.
        self.certificates = certificates
        self._contexts: dict[tuple[object, ...], tuple[object, ssl.SSLContext]] = {}

    def prepare(self, tls: TLSSettings, hostname: str) -> ssl.SSLContext:
        """Load (or reload, when the files changed) the context for these settings; raises
        TLSSetupError and keeps the context it had."""
        own = tls.certificate is not None and tls.private_key is not None
        if tls.certificate is None or tls.private_key is None:
            cert, key = self.self_signed(hostname)
            if self.certificates is not None:
                self.certificates.note_self_signed(hostname, cert, key)
        else:
            cert, key = tls.certificate, tls.private_key
        try:
            identity = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (cert, key))
        except OSError as exc:
            raise TLSSetupError(f"cannot read {exc.filename}: {exc.strerror}") from None
        cache_key = self._key(tls, hostname)
        cached = self._contexts.get(cache_key)
        if cached is not None and cached[0] == identity:
            return cached[1]
        context = build_context(cert, key, tls.min_version)
        if self.certificates is not None:
            self.certificates.listener_context(context, hostname, own)
        self._contexts[cache_key] = (identity, context)
        return context

    def server_context(self, tls: TLSSettings, hostname: str) -> ssl.SSLContext:
        """The context prepared for these settings (prepared now if it never was)."""
        cached = self._contexts.get(self._key(tls, hostname))
        return cached[1] if cached is not None else self.prepare(tls, hostname)

    @staticmethod
    def _key(tls: TLSSettings, hostname: str) -> tuple[object, ...]:
        if tls.certificate is None or tls.private_key is None:
            return ("self-signed", hostname, tls.min_version)
        return (str(tls.certificate), str(tls.private_key), tls.min_version)

    def self_signed(self, hostname: str) -> tuple[Path, Path]:
        """A self-signed certificate and key for ``hostname``, created when needed."""
        directory = self.data_dir / "tls"
        # the hostname is a validated configuration value; the file name is checked all the same
        cert_path = safe_join(directory, f"self-signed-{hostname}.crt")
        key_path = safe_join(directory, f"self-signed-{hostname}.key")
        if _still_valid(cert_path) and key_path.exists():
            return cert_path, key_path
        private_dir(directory)
        # Worker processes start side by side: one makes the pair while the others wait for
        # it, so none reads a key written by one process beside a certificate of another.
        lock = open_private(directory / ".self-signed.lock")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (_still_valid(cert_path) and key_path.exists()):
                self._generate_self_signed(hostname, cert_path, key_path)
        finally:
            os.close(lock)  # which ends the flock
        return cert_path, key_path

    def _generate_self_signed(self, hostname: str, cert_path: Path, key_path: Path) -> None:
        if self.certificates is not None and self.certificates.index.certificates:
            log.info("a self-signed certificate for %s, for clients no certificate fits", hostname)
        else:
            log.warning(
                "no certificate configured: using a self-signed certificate for %s, which clients "
                "will not trust; set [certificate.<id>] cert and private-key (or "
                "server.tls.certificate and server.tls.private-key)",
                hostname,
            )
        cert_pem, key_pem = generate_self_signed(hostname)
        write_private(key_path, key_pem)
        write_private(cert_path, cert_pem)


def generate_self_signed(hostname: str) -> tuple[bytes, bytes]:
    """A PEM certificate (after its ``NOT_AFTER_NOTE`` line) and PEM private key (ECDSA
    P-256) for ``hostname``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    with contextlib.suppress(ValueError):  # an IP literal gets an IP SAN instead
        alt_names = [x509.IPAddress(ipaddress.ip_address(hostname))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    note = NOT_AFTER_NOTE + certificate.not_valid_after_utc.isoformat().encode() + b"\n"
    cert_pem = note + certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def build_context(cert: Path, key: Path, min_version: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.sni_callback = _remember_sni
    load_chain(context, cert, key)
    return context


def load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    """Load a certificate chain and its key into ``context``; TLSSetupError says which file
    and why (an unreadable file, or a key that is not the certificate's)."""
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # before OSError, of which it is a kind
        raise TLSSetupError(
            f"cannot use certificate {cert} with key {key}: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise TLSSetupError(f"cannot read {exc.filename or cert}: {exc.strerror}") from None


def _remember_sni(ssl_object: ssl.SSLObject, server_name: str | None, _ctx: object) -> None:
    ssl_object.sni = server_name  # type: ignore[attr-defined]  # read back as TLSInfo.server_name


def _still_valid(cert_path: Path) -> bool:
    try:
        pem = cert_path.read_bytes()
    except OSError:
        return False
    not_after = _noted_expiry(pem)
    if not_after is None:
        from cryptography import x509

        try:
            not_after = x509.load_pem_x509_certificate(pem).not_valid_after_utc
        except ValueError:
            return False
    return not_after - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE


def _noted_expiry(pem: bytes) -> datetime.datetime | None:
    """The expiry ``generate_self_signed`` wrote on the file's first line, if it did."""
    first, _, _ = pem.partition(b"\n")
    if not first.startswith(NOT_AFTER_NOTE):
        return None
    try:
        noted = datetime.datetime.fromisoformat(first[len(NOT_AFTER_NOTE) :].decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return noted if noted.tzinfo is not None else None
