"""The certificate store: which certificate a TLS handshake gets, by the name it asks for.

Sources:

- ``[certificate."<id>"]`` files (``source = "file"``), read when a configuration is applied
  (start, reload, ``server.certificate-watch``), never during a handshake;
- certificates installed at run time by the ACME client (``install``, ``source = "acme"``),
  kept in the store (``Store.install_certificate``), so that every node serves what one
  ordered, and read from it at start and whenever any process or node installs one;
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

Several processes and nodes (``server.workers``, PostgreSQL): what ``install`` and
``set_alpn_challenge`` put in force is written to the store, whose change notification
(``CERTIFICATES_CHANNEL`` in the write's change set: a datagram to this node's processes, a
NOTIFY to other nodes) makes every other process ``refresh`` at once, not at its next reload.
The write returns once it is committed, and the notification leaves with the commit, so it is
on its way to every worker and node before the ACME client even tells the CA to validate.
``refresh`` reads the rows and builds the contexts of what changed (``pem_context``: from
memory, no files); handshakes only ever read the index in memory.
"""

from __future__ import annotations

import datetime
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stalwart_py.certificate_metrics import register as register_metrics
from stalwart_py.client_hello import HelloReadingSSLObject
from stalwart_py.config.certificates import CertificateSettings
from stalwart_py.metrics import Metrics
from stalwart_py.pem_context import PemError, context_from_pem
from stalwart_py.store.base_shared_state import ACME_CHALLENGE_LIFETIME
from stalwart_py.store.model import StoredCertificate
from stalwart_py.tls import TLSSetupError, load_chain

# cryptography is imported by the first certificate read (from [certificate.*], install() or
# when the self-signed one is first listed), not by every start: its x509 package was ~40 ms
# of a start's imports, and a server on its self-signed certificate reads none at start.
if TYPE_CHECKING:
    from cryptography import x509

    from stalwart_py.store.base_shared_state import SharedStateStore

log = logging.getLogger("stalwart_py.certificates")

ACME_TLS_ALPN = "acme-tls/1"  # RFC 8737 6.2
TLS_ALPN_01 = "tls-alpn-01"  # the store's kind of challenge rows answered here
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
    files: tuple[Path, ...]  # none for one installed in the store
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
    files: tuple[Path, ...],
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
        # Where installed certificates and TLS-ALPN-01 answers are kept for every process and
        # node (set by ServerContext); None: in this process only (tests of the index).
        self.store: SharedStateStore | None = None
        self.index = Index()
        self._files: dict[str, Certificate] = {}  # [certificate.*], by id
        self._installed: dict[str, Certificate] = {}  # install(), by id
        self._rows: dict[str, StoredCertificate] = {}  # install()'s, as last read, by id
        self._self_signed: dict[str, Certificate] = {}  # by host name, once described
        self._self_signed_files: dict[str, tuple[Path, Path]] = {}  # by host name
        self._challenges: dict[str, ssl.SSLContext] = {}  # TLS-ALPN-01, by domain
        self._challenge_rows: dict[str, tuple[bytes, bytes]] = {}  # their PEM, as last read
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
        """The installed certificates of the rows last read (``load``): kept when unchanged,
        built again when changed; a pair that cannot be used is logged and left out (the
        previous one stays, when there was one)."""
        found: list[Certificate] = []
        for cert_id, row in sorted(self._rows.items()):
            old = self._installed.get(cert_id)
            row_stamp = _row_stamp(row)
            if old is not None and old.stamp == row_stamp:
                found.append(old)
                continue
            try:
                found.append(_installed_certificate(row))
            except CertificateError as exc:
                log.error("installed certificate %s cannot be used, not loaded: %s", cert_id, exc)
                if old is not None:
                    found.append(old)
        return found

    def _reindex(self) -> None:
        self.index = Index.of([*self._files.values(), *self._installed.values()])

    async def load(self) -> None:
        """Read the installed certificates and pending TLS-ALPN-01 answers from the store
        (at start, before ``configure``, and in ``refresh``)."""
        if self.store is None:
            return
        rows = await self.store.installed_certificates()
        since = time.time() - ACME_CHALLENGE_LIFETIME
        challenges = await self.store.acme_challenges(TLS_ALPN_01, since)
        self._rows = {row.id: row for row in rows}
        self._challenge_rows = {name: (cert, key or b"") for name, cert, key in challenges}

    def stored(self, cert_id: str) -> StoredCertificate | None:
        """The chain and key installed under ``cert_id``, as last read (``load``)."""
        return self._rows.get(cert_id)

    # -- the interface the ACME client uses ---------------------------------------------

    async def install(self, cert_id: str, chain_pem: bytes, key_pem: bytes) -> None:
        """Validate a chain and key, keep them in the store and put them in force for every
        listener's next handshake, here at once and in every other process and node by the
        store's notification. Raises CertificateError and keeps what was there on bad input."""
        leaf = check_pair(chain_pem, key_pem)
        try:
            context = context_from_pem(chain_pem, key_pem)
        except PemError as exc:
            raise CertificateError(str(exc)) from None
        installed = time.time()
        if self.store is not None:
            installed = await self.store.install_certificate(cert_id, chain_pem, key_pem)
        row = StoredCertificate(cert_id, chain_pem, key_pem, installed)
        self._rows[cert_id] = row
        cert = describe_leaf(leaf, cert_id, "acme", (), _row_stamp(row), context)
        self._installed[cert_id] = cert
        self._reindex()
        log.info("certificate %s installed: %s", cert_id, _summary(cert))

    async def set_alpn_challenge(self, domain: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Answer TLS-ALPN-01 for ``domain`` with this validation certificate (RFC 8737 3)
        until ``clear_alpn_challenge``, in this process and, through the store, in every
        other process and node (the CA may reach any of them). Raises CertificateError on an
        unusable pair."""
        check_pair(cert_pem, key_pem)
        name = normal_name(domain)
        try:
            context = context_from_pem(cert_pem, key_pem, alpn=(ACME_TLS_ALPN,))
        except PemError as exc:
            raise CertificateError(str(exc)) from None
        if self.store is not None:
            await self.store.put_acme_challenge(TLS_ALPN_01, name, cert_pem, key_pem)
        self._challenges[name] = context
        self._challenge_rows[name] = (cert_pem, key_pem)
        log.info("TLS-ALPN-01: answering the challenge for %s", name)

    async def clear_alpn_challenge(self, domain: str) -> None:
        name = normal_name(domain)
        if self.store is not None:
            await self.store.delete_acme_challenge(TLS_ALPN_01, name)
        self._challenge_rows.pop(name, None)
        if self._challenges.pop(name, None) is not None:
            log.info("TLS-ALPN-01: challenge for %s withdrawn", name)

    # -- what other processes changed ---------------------------------------------------

    async def refresh(self) -> None:
        """Put in force what another process or node installed or withdrew (called when
        the store's notification reaches this process): the rows are read again, and the
        contexts of those that changed built again."""
        await self.load()
        before = self._installed
        self._installed = {c.id: c for c in self._scan_installed()}
        for cert in self._installed.values():
            if before.get(cert.id) is not cert:
                log.info("certificate %s in force: %s", cert.id, _summary(cert))
        self._reindex()
        self._load_challenges()

    def _load_challenges(self) -> None:
        contexts: dict[str, ssl.SSLContext] = {}
        for name, (cert_pem, key_pem) in self._challenge_rows.items():
            old = self._challenges.get(name)
            if old is not None:  # a challenge's pair never changes under its name
                contexts[name] = old
                continue
            try:
                contexts[name] = context_from_pem(cert_pem, key_pem, alpn=(ACME_TLS_ALPN,))
            except PemError:
                continue
            log.info("TLS-ALPN-01: answering the challenge for %s (set by another process)", name)
        for name in self._challenges.keys() - contexts.keys():
            log.info("TLS-ALPN-01: challenge for %s withdrawn (by another process)", name)
        self._challenges = contexts

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


def _row_stamp(row: StoredCertificate) -> Stamp:
    """What identifies an installed certificate's version: its install time and size."""
    return ((int(row.installed * 1e9), len(row.chain)),)


def _installed_certificate(row: StoredCertificate) -> Certificate:
    leaf = check_pair(row.chain, row.private_key)
    try:
        context = context_from_pem(row.chain, row.private_key)
    except PemError as exc:
        raise CertificateError(str(exc)) from None
    return describe_leaf(leaf, row.id, "acme", (), _row_stamp(row), context)


def _summary(cert: Certificate) -> str:
    return (
        f"{', '.join(cert.names) or 'no names'}, issued by {cert.issuer}, "
        f"valid until {_iso(cert.not_after)}"
    )
