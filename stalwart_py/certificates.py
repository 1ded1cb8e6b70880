"""The certificate store: which certificate a TLS handshake gets, by the name it asks for.

Sources:

- ``[certificate."<id>"]`` files (``source = "file"``), read when a configuration is applied
  (start, reload, ``server.certificate-watch``), never during a handshake;
- certificates installed at run time by the ACME client (``install``, ``source = "acme"``),
  kept under ``<data-dir>/certificates/<id>/{cert,key}.pem`` and read back at start;
- the self-signed certificate ``tls.py`` makes when nothing else fits (``source =
  "self-signed"``; listed by ``describe`` so that an operator sees it is in use).

Choice (``choose``), made in the SNI callback of every listener's context: a certificate
with a DNS name equal to the server name (RFC 6066 3) the client sent; else one with a
wildcard name covering it (RFC 6125 6.4.3: ``*.example.com`` is ``*`` as the whole
left-most label and matches exactly one label, so ``a.example.com`` but neither
``example.com`` nor ``a.b.example.com``); else the ``default = true`` one; else one
covering the listener's host name (a client that sends no name reaches the host); else
none, and the listener's own context (its ``tls.certificate``, or the self-signed one)
answers. Among several candidates, one valid now wins over one that is not, then the one
valid longest. A listener with its own ``tls.certificate`` keeps it: that is an explicit
choice for that listener.

Each certificate becomes one ``ssl.SSLContext`` when it is loaded, and the callback swaps
it in (``SSLObject.context``, OpenSSL's ``SSL_set_SSL_CTX``): only the certificate and
callbacks change; protocol versions and ciphers stay the listener's. A new certificate
(reload, ``install``) replaces the index at once; sessions that shook hands keep theirs.

TLS-ALPN-01 (RFC 8737): while ``set_alpn_challenge(domain, ...)`` is in force, a handshake
whose ClientHello names ``domain`` and offers the ALPN protocol ``acme-tls/1`` gets the
validation certificate, on a context whose only ALPN protocol is ``acme-tls/1`` (so that
ALPN negotiates it, 3), and the connection is closed once the handshake is done (the ACME
server sends nothing more, 3). Clients that do not offer ``acme-tls/1`` are unaffected
(``client_hello.py`` reads the offer, which Python's SNI callback does not show).

Several processes on one data directory (``server.workers``): what ``install`` and
``set_alpn_challenge`` put in force is on disk (``<data-dir>/certificates/<id>/``,
``<data-dir>/acme/tls-alpn-01/<domain>.{crt,key}``), and ``announce`` (the store's change
notification, ``CERTIFICATES_CHANNEL``) makes every other process ``refresh`` at once, not at
its next reload. The announcement is a datagram sent before ``set_alpn_challenge`` returns,
so it is waiting in every worker before the ACME client even tells the CA to validate.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stalwart_py.certificate_metrics import register as register_metrics
from stalwart_py.client_hello import HelloReadingSSLObject
from stalwart_py.config.certificates import CertificateSettings
from stalwart_py.files import private_dir, safe_join, write_private
from stalwart_py.metrics import Metrics
from stalwart_py.tls import TLSSetupError, load_chain

# cryptography is imported by the first certificate read (from [certificate.*], install() or
# when the self-signed one is first listed), not by every start: its x509 package was ~40 ms
# of a start's imports, and a server on its self-signed certificate reads none at start.
if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger("stalwart_py.certificates")

ACME_TLS_ALPN = "acme-tls/1"  # RFC 8737 6.2
INSTALLED_DIR = "certificates"
CHALLENGE_DIR = Path("acme", "tls-alpn-01")  # pending TLS-ALPN-01 answers, under the data dir
# A challenge file older than this was left by a process that died during its order (an order
# takes seconds to minutes); it is not answered.
CHALLENGE_LIFETIME = 3600.0
# File identity as the store saw it: (mtime in ns, size) per file, None when missing.
Stamp = tuple[tuple[int, int] | None, ...]


class CertificateError(Exception):
    """A certificate or key that cannot be used; the message says which and why."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def normal_name(name: str) -> str:
    """DNS names compare case-insensitively (RFC 4343), without a trailing dot."""
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True, slots=True, eq=False)
class Certificate:
    """A loaded certificate: what ``describe`` reports and the context handshakes get."""

    id: str
    source: str  # "file" | "acme" | "self-signed"
    names: tuple[str, ...]  # DNS names (subjectAltName; the CN when there is none), lowercase
    subject: str
    issuer: str
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint: str  # SHA-256 of the leaf, hex
    files: tuple[Path, Path]
    stamp: Stamp = field(repr=False)
    context: ssl.SSLContext | None = field(repr=False, default=None)
    default: bool = False

    def valid_at(self, moment: datetime.datetime) -> bool:
        return self.not_before <= moment <= self.not_after

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "names": list(self.names),
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "expires_in": int((self.not_after - now()).total_seconds()),
            "fingerprint_sha256": self.fingerprint,
            "default": self.default,
            "files": [str(p) for p in self.files],
        }


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(paths: Iterable[Path]) -> Stamp:
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The names a certificate is for: its subjectAltName DNS names, or, only when it has
    none, its subject's common name (RFC 6125 6.4.4)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [
            str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return tuple(dict.fromkeys(normal_name(n) for n in names if n))


def server_context(cert: Path, key: Path, *, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A context holding one certificate chain, for the SNI callback to swap in."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        load_chain(context, cert, key)
    except TLSSetupError as exc:
        raise CertificateError(str(exc)) from None
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def load_certificate(
    cert_id: str, source: str, cert: Path, key: Path, *, default: bool = False
) -> Certificate:
    """Read a chain and key from files into a Certificate with its context; raises
    CertificateError naming the file and what is wrong."""
    from cryptography import x509

    before = stamp((cert, key))
    try:
        chain = x509.load_pem_x509_certificates(cert.read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot read {cert}: {exc.strerror}") from None
    except ValueError:
        raise CertificateError(f"{cert}: expected PEM certificates (a chain, leaf first)") from None
    context = server_context(cert, key)  # also proves that the key is the leaf's
    return describe_leaf(chain[0], cert_id, source, (cert, key), before, context, default)


def describe_leaf(
    leaf: x509.Certificate,
    cert_id: str,
    source: str,
    files: tuple[Path, Path],
    file_stamp: Stamp,
    context: ssl.SSLContext | None,
    default: bool = False,
) -> Certificate:
    from cryptography.hazmat.primitives import hashes

    return Certificate(
        id=cert_id,
        source=source,
        names=dns_names(leaf),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=f"{leaf.serial_number:x}",
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        files=files,
        stamp=file_stamp,
        context=context,
        default=default,
    )


def check_pair(chain_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """Validate a PEM chain and key in memory: certificates parse, the key parses and is the
    leaf's. Returns the leaf; raises CertificateError."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise CertificateError("expected PEM certificates (a chain, leaf first)") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CertificateError("expected an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    leaf_key = chain[0].public_key().public_bytes(serialization.Encoding.DER, public)
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != leaf_key:
        raise CertificateError("the private key is not the key of the first certificate")
    return chain[0]


@dataclass(frozen=True, slots=True)
class Index:
    """The certificates in force, indexed for the SNI callback; replaced whole, never
    changed, so that a handshake sees one consistent set."""

    certificates: tuple[Certificate, ...] = ()
    exact: Mapping[str, tuple[Certificate, ...]] = field(default_factory=dict)
    wildcard: Mapping[str, tuple[Certificate, ...]] = field(default_factory=dict)  # by parent
    default: Certificate | None = None

    @classmethod
    def of(cls, certificates: Iterable[Certificate]) -> Index:
        every = tuple(certificates)
        exact: dict[str, list[Certificate]] = {}
        wildcard: dict[str, list[Certificate]] = {}
        for cert in every:
            for name in cert.names:
                if name.startswith("*."):
                    wildcard.setdefault(name[2:], []).append(cert)
                elif "*" not in name:  # partial wildcards ("f*.example.com") match nothing
                    exact.setdefault(name, []).append(cert)
        default = next((c for c in every if c.default), None)
        return cls(
            every,
            {k: tuple(v) for k, v in exact.items()},
            {k: tuple(v) for k, v in wildcard.items()},
            default,
        )

    def matching(self, server_name: str) -> Certificate | None:
        """The certificate for a name: exact match first, then a wildcard one label up."""
        name = normal_name(server_name)
        found = self.exact.get(name)
        if not found:
            label, dot, parent = name.partition(".")
            found = self.wildcard.get(parent) if dot and label and parent else None
        return _best(found) if found else None


def _best(candidates: Iterable[Certificate]) -> Certificate:
    moment = now()
    return max(candidates, key=lambda c: (c.valid_at(moment), c.not_after))


@dataclass(frozen=True, slots=True)
class Staged:
    """Certificates loaded from a configuration, not yet in force (``stage``/``commit``)."""

    files: tuple[Certificate, ...]
    installed: tuple[Certificate, ...]


class CertificateStore:
    """One per server (``ServerContext.certificates``); see the module docstring."""

    def __init__(self, data_dir: Path, metrics: Metrics | None = None) -> None:
        self.data_dir = data_dir
        self.index = Index()
        self._files: dict[str, Certificate] = {}  # [certificate.*], by id
        self._installed: dict[str, Certificate] = {}  # install(), by id
        self._self_signed: dict[str, Certificate] = {}  # by host name, once described
        self._self_signed_files: dict[str, tuple[Path, Path]] = {}  # by host name
        self._challenges: dict[str, ssl.SSLContext] = {}  # TLS-ALPN-01, by domain
        self._challenge_stamps: dict[str, Stamp] = {}  # their files, as last read
        # Tells the other processes on the data directory that ``install`` or a challenge
        # changed what is on disk (the server sets it: ``ChangeHub.announce``); they
        # ``refresh``.
        self.announce: Callable[[], None] | None = None
        # Who adds to describe()'s entries (the ACME client: its renewal state), by id.
        self._details: list[Callable[[], Mapping[str, Mapping[str, Any]]]] = []
        if metrics is not None:
            register_metrics(metrics, self)

    # -- configuration ------------------------------------------------------------------

    def configure(self, certificates: Mapping[str, CertificateSettings], file: str = "") -> None:
        """Load ``[certificate.*]`` and the installed certificates and put them in force;
        raises CertificateError with every problem and changes nothing."""
        self.commit(self.stage(certificates, file))

    def stage(self, certificates: Mapping[str, CertificateSettings], file: str = "") -> Staged:
        """Load what changed since the last load (a file is read again only when its
        modification time or size did); raises CertificateError naming each table and file
        that cannot be used, keeping what is in force."""
        problems: list[str] = []
        files: list[Certificate] = []
        prefix = f"{file}: " if file else ""
        for cert_id, settings in certificates.items():
            paths = (settings.cert, settings.private_key)
            old = self._files.get(cert_id)
            if old is not None and old.files == paths and old.stamp == stamp(paths):
                files.append(replace(old, default=settings.default))
                continue
            try:
                files.append(load_certificate(cert_id, "file", *paths, default=settings.default))
            except CertificateError as exc:
                problems.append(f'{prefix}certificate."{cert_id}": {exc}')
        if problems:
            raise CertificateError("; ".join(problems))
        return Staged(tuple(files), tuple(self._scan_installed()))

    def commit(self, staged: Staged) -> None:
        for cert in staged.files:
            if self._files.get(cert.id) is not cert:
                log.info("certificate %s: %s", cert.id, _summary(cert))
        self._files = {c.id: c for c in staged.files}
        self._installed = {c.id: c for c in staged.installed}
        self._reindex()
        # a worker started while another's order is pending answers its challenge too
        self._load_challenges()

    def _scan_installed(self) -> list[Certificate]:
        """What ``install`` wrote, also by another process on this data directory: kept
        when unchanged, read again when changed; a pair that cannot be used is logged and
        left out (the previous one stays, when there was one)."""
        root = self.data_dir / INSTALLED_DIR
        found: list[Certificate] = []
        if not root.is_dir():
            return list(self._installed.values())
        for directory in sorted(root.iterdir()):
            if not directory.is_dir() or directory.name.startswith("."):
                continue
            cert_id = directory.name
            paths = (directory / "cert.pem", directory / "key.pem")
            old = self._installed.get(cert_id)
            if old is not None and old.stamp == stamp(paths):
                found.append(old)
                continue
            try:
                found.append(load_certificate(cert_id, "acme", *paths))
            except CertificateError as exc:
                log.error("installed certificate %s cannot be used, not loaded: %s", cert_id, exc)
                if old is not None:
                    found.append(old)
        return found

    def _reindex(self) -> None:
        self.index = Index.of([*self._files.values(), *self._installed.values()])

    # -- the interface the ACME client uses ---------------------------------------------

    def install(self, cert_id: str, chain_pem: bytes, key_pem: bytes) -> None:
        """Validate a chain and key, write them under ``<data-dir>/certificates/<cert_id>/``
        (0600, each file replaced atomically) and put them in force for every listener's
        next handshake. Raises CertificateError and keeps what was there on bad input."""
        leaf = check_pair(chain_pem, key_pem)
        root = self.data_dir / INSTALLED_DIR
        directory = safe_join(root, cert_id)
        private_dir(directory)
        new_cert, new_key = directory / ".new-cert.pem", directory / ".new-key.pem"
        write_private(new_key, key_pem)
        write_private(new_cert, chain_pem)
        try:
            context = server_context(new_cert, new_key)
        except CertificateError:
            new_cert.unlink(missing_ok=True)
            new_key.unlink(missing_ok=True)
            raise
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        # The key first: a reader between the two renames that sees the new key with the old
        # chain fails to load that pair and keeps what it had (see _scan_installed).
        new_key.replace(key_path)
        new_cert.replace(cert_path)
        cert = describe_leaf(
            leaf, cert_id, "acme", (cert_path, key_path), stamp((cert_path, key_path)), context
        )
        self._installed[cert_id] = cert
        self._reindex()
        log.info("certificate %s installed: %s", cert_id, _summary(cert))
        self._announce()

    def set_alpn_challenge(self, domain: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Answer TLS-ALPN-01 for ``domain`` with this validation certificate (RFC 8737 3)
        until ``clear_alpn_challenge``, in this process and, through the files under
        ``<data-dir>/acme/tls-alpn-01/`` and ``announce``, in every other process serving the
        data directory (the CA may reach any worker). Raises CertificateError on an unusable
        pair."""
        check_pair(cert_pem, key_pem)
        name = normal_name(domain)
        cert_path, key_path = self._challenge_files(name)
        private_dir(cert_path.parent)
        write_private(key_path, key_pem)  # the key first, as install() does
        write_private(cert_path, cert_pem)
        try:
            context = server_context(cert_path, key_path, alpn=(ACME_TLS_ALPN,))
        except CertificateError:
            cert_path.unlink(missing_ok=True)
            key_path.unlink(missing_ok=True)
            raise
        self._challenges[name] = context
        self._challenge_stamps[name] = stamp((cert_path, key_path))
        log.info("TLS-ALPN-01: answering the challenge for %s", name)
        self._announce()

    def clear_alpn_challenge(self, domain: str) -> None:
        name = normal_name(domain)
        with contextlib.suppress(ValueError):  # a name that cannot be a file was never one
            for path in self._challenge_files(name):
                path.unlink(missing_ok=True)
        self._challenge_stamps.pop(name, None)
        if self._challenges.pop(name, None) is not None:
            log.info("TLS-ALPN-01: challenge for %s withdrawn", name)
        self._announce()

    def _challenge_files(self, name: str) -> tuple[Path, Path]:
        directory = self.data_dir / CHALLENGE_DIR
        return safe_join(directory, f"{name}.crt"), safe_join(directory, f"{name}.key")

    # -- what other processes changed ---------------------------------------------------

    def refresh(self) -> None:
        """Put in force what another process on this data directory installed or withdrew
        (called when ``announce`` reaches this process): installed certificates whose files
        changed are read again, and the pending TLS-ALPN-01 challenges are those on disk."""
        before = self._installed
        self._installed = {c.id: c for c in self._scan_installed()}
        for cert in self._installed.values():
            if before.get(cert.id) is not cert:
                log.info("certificate %s in force: %s", cert.id, _summary(cert))
        self._reindex()
        self._load_challenges()

    def _load_challenges(self) -> None:
        directory = self.data_dir / CHALLENGE_DIR
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            entries = []
        contexts: dict[str, ssl.SSLContext] = {}
        stamps: dict[str, Stamp] = {}
        for entry in entries:
            if not entry.endswith(".crt") or entry.startswith("."):
                continue
            name = entry.removesuffix(".crt")
            paths = (directory / entry, directory / f"{name}.key")
            found = stamp(paths)
            if found[0] is None or found[1] is None:
                continue
            if time.time() - found[0][0] / 1e9 > CHALLENGE_LIFETIME:
                continue  # left by a process that died during an order
            old = self._challenges.get(name)
            if old is not None and self._challenge_stamps.get(name) == found:
                contexts[name], stamps[name] = old, found
                continue
            try:
                contexts[name] = server_context(*paths, alpn=(ACME_TLS_ALPN,))
            except CertificateError:
                continue  # between the writer's two renames: it announces again after both
            stamps[name] = found
            log.info("TLS-ALPN-01: answering the challenge for %s (set by another process)", name)
        self._challenges, self._challenge_stamps = contexts, stamps

    def _announce(self) -> None:
        if self.announce is not None:
            self.announce()

    def add_details(self, details: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        """Have ``describe`` merge ``details()[id]`` into the entry of each id (the ACME
        client's next renewal, last error); an id with details but no certificate yet (an
        ACME order still to succeed) is listed with its details alone."""
        self._details.append(details)

    def describe(self) -> list[dict[str, Any]]:
        """Every certificate known: configured, installed and self-signed ones in use."""
        entries = {c.id: c.describe() for c in self.certificates()}
        for details in self._details:
            for cert_id, extra in details().items():
                entries.setdefault(cert_id, {"id": cert_id, "source": "acme"}).update(extra)
        return list(entries.values())

    def certificates(self) -> list[Certificate]:
        self._describe_self_signed()
        return [*self._files.values(), *self._installed.values(), *self._self_signed.values()]

    # -- used by tls.py -----------------------------------------------------------------

    def note_self_signed(self, hostname: str, cert: Path, key: Path) -> None:
        """Record the self-signed certificate ``tls.py`` serves for ``hostname``; it is read
        when first listed (``certificates``), not here, at every start."""
        self._self_signed_files[hostname] = (cert, key)

    def _describe_self_signed(self) -> None:
        for hostname, (cert, key) in self._self_signed_files.items():
            current = self._self_signed.get(hostname)
            if current is not None and current.stamp == stamp((cert, key)):
                continue
            from cryptography import x509

            try:
                leaf = x509.load_pem_x509_certificate(cert.read_bytes())
            except (OSError, ValueError):
                continue  # what was described before stays
            self._self_signed[hostname] = describe_leaf(
                leaf,
                f"self-signed:{hostname}",
                "self-signed",
                (cert, key),
                stamp((cert, key)),
                None,
            )

    @property
    def wants_client_hello(self) -> bool:
        """True while a TLS-ALPN-01 challenge is pending (see ``client_hello.py``)."""
        return bool(self._challenges)

    def choose(
        self, ssl_object: ssl.SSLObject, server_name: str | None, hostname: str, own: bool
    ) -> ssl.SSLContext | None:
        """The context a handshake should continue with, None for the listener's own.
        ``own``: the listener has its own ``tls.certificate``, which only a TLS-ALPN-01
        challenge overrides."""
        if server_name and self._challenges:
            offered = getattr(ssl_object, "offered_alpn", ())
            challenge = self._challenges.get(normal_name(server_name))
            if challenge is not None and ACME_TLS_ALPN in offered:
                return challenge
        if own:
            return None
        index = self.index
        if not index.certificates:
            return None
        chosen = index.matching(server_name) if server_name else None
        if chosen is None:
            chosen = index.default or index.matching(hostname)
        return chosen.context if chosen is not None else None

    def sni_callback(self, hostname: str, own: bool) -> Any:
        """The ``SSLContext.sni_callback`` of a listener context (see ``tls.py``)."""

        def callback(ssl_object: ssl.SSLObject, server_name: str | None, _base: Any) -> None:
            ssl_object.sni = server_name  # type: ignore[attr-defined]  # TLSInfo.server_name
            try:
                context = self.choose(ssl_object, server_name, hostname, own)
                if context is not None:
                    ssl_object.context = context
            except Exception:  # a handshake must not die of a bug here: the listener's own
                log.exception("choosing a certificate for %r failed", server_name)

        return callback

    def listener_context(self, context: ssl.SSLContext, hostname: str, own: bool) -> None:
        """Make a listener's context choose by SNI from this store."""
        context.sni_callback = self.sni_callback(hostname, own)
        context.sslobject_class = HelloReadingSSLObject
        context.wants_client_hello = lambda: self.wants_client_hello  # type: ignore[attr-defined]


def _summary(cert: Certificate) -> str:
    return (
        f"{', '.join(cert.names) or 'no names'}, issued by {cert.issuer}, "
        f"valid until {_iso(cert.not_after)}"
    )
