"""DANE for SMTP (RFC 7672): an MX host's certificate checked against its TLSA records.

When the MX records of a domain came from a DNSSEC-validated answer, and so did the TLSA
records at ``_25._tcp.<mx host>`` (the resolver's AD bit, see ``stalwart_py/resolver.py`` for
why it is trusted), the host must be reached over TLS and its certificate must match one of
the usable records (2.2, 3). Usable, as RFC 7672 3.1 says for SMTP:

* usage 3, DANE-EE: the server's own certificate (or its public key) is the record's data.
  Nothing else is checked: not the name, not the expiry, not the issuer (3.1.1);
* usage 2, DANE-TA: a certificate of the chain the server sent is the record's trust anchor;
  the server's certificate must chain up to it and carry the MX host's name (3.1.2, 3.2.2);
* usages 0 and 1 (PKIX-TA, PKIX-EE) are not used with SMTP (3.1.3): such records are
  ignored, as are unknown selectors and matching types.

Selectors: 0 the whole certificate (DER), 1 its SubjectPublicKeyInfo (DER). Matching types: 0
the data itself, 1 its SHA-256, 2 its SHA-512 (RFC 6698 2.1).

An authenticated TLSA answer with no usable record still makes TLS mandatory, without
authentication (RFC 7672 2.2). The handshake itself is done without PKIX checks; ``verify``
then decides. DANE, when it applies, takes precedence over MTA-STS (RFC 8461 2).
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stalwart_py.resolver import Tlsa

# cryptography is imported by the first DANE check (a delivery to a host with usable TLSA
# records), not by every start, which imports this module with the queue.
if TYPE_CHECKING:
    from cryptography import x509

DANE_TA = 2
DANE_EE = 3
MAX_DEPTH = 8  # certificates from the leaf to the trust anchor, at most
_DER = 2  # _ssl.ENCODING_DER, for the private chain accessor of Python before 3.13


class DaneFailure(Exception):
    """The server's certificate matched no usable TLSA record."""


def usable(records: Sequence[Tlsa]) -> list[Tlsa]:
    """The records RFC 7672 3.1 lets SMTP use: DANE-TA/DANE-EE, known selector and matching."""
    return [
        r for r in records if r.usage in (DANE_TA, DANE_EE) and r.selector in (0, 1)
        and r.matching in (0, 1, 2)
    ]  # fmt: skip


def verify(ssl_object: ssl.SSLObject, records: Sequence[Tlsa], host: str) -> str:
    """Check the handshake's certificates against ``records``; the record that matched, as
    text, for the log. Raises DaneFailure."""
    from cryptography import x509

    chain = peer_chain(ssl_object)
    if not chain:
        raise DaneFailure(f"{host} sent no certificate")
    certificates = [x509.load_der_x509_certificate(der) for der in chain]
    leaf = certificates[0]
    for record in records:
        if record.usage == DANE_EE and matches(record, leaf):
            return describe(record)
    for record in records:
        if record.usage != DANE_TA:
            continue
        for anchor in certificates:
            if matches(record, anchor) and _chains_to(leaf, certificates, anchor, host):
                return describe(record)
    raise DaneFailure(f"the certificate of {host} matches none of its {len(records)} TLSA records")


def matches(record: Tlsa, certificate: x509.Certificate) -> bool:
    """RFC 6698 2.1: the selected part of ``certificate``, hashed as the record says."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if record.selector == 0:
        selected = certificate.public_bytes(Encoding.DER)
    else:
        selected = certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
    if record.matching == 1:
        selected = hashlib.sha256(selected).digest()
    elif record.matching == 2:
        selected = hashlib.sha512(selected).digest()
    return selected == record.data


def _chains_to(
    leaf: x509.Certificate,
    chain: list[x509.Certificate],
    anchor: x509.Certificate,
    host: str,
) -> bool:
    """DANE-TA (RFC 7672 3.2.2): the leaf names ``host`` and chains up, signature by
    signature through the certificates the server sent, to ``anchor`` (taken as the root
    whatever its own issuer); each certificate on the way is within its validity period.
    (Signatures and names only: private CAs used with DANE-TA seldom follow the Web PKI
    profile that a full path validator insists on.)"""
    from cryptography.exceptions import InvalidSignature

    now = datetime.datetime.now(datetime.UTC)
    current = leaf
    for _ in range(MAX_DEPTH):
        if not current.not_valid_before_utc <= now <= current.not_valid_after_utc:
            return False
        if current == anchor:
            return _names(leaf, host)
        parents = [anchor] + [c for c in chain if c != current and c != anchor]
        for parent in parents:
            try:
                current.verify_directly_issued_by(parent)
            except (ValueError, TypeError, InvalidSignature):
                continue
            current = parent
            break
        else:
            return False
    return False


def _names(certificate: x509.Certificate, host: str) -> bool:
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    from stalwart_py.queue.mta_sts import mx_matches

    return any(mx_matches(name, host) for name in names.value.get_values_for_type(x509.DNSName))


def peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server sent, leaf first, DER (not verified: DANE decides)."""
    getter = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13
    if getter is not None:
        return list(getter() or [])
    inner = getattr(ssl_object, "_sslobj", None)
    private = getattr(inner, "get_unverified_chain", None)
    if private is not None:
        return [cert.public_bytes(_DER) for cert in private() or []]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def describe(record: Tlsa) -> str:
    return f"{record.usage} {record.selector} {record.matching} {record.data.hex()[:16]}..."
