"""The self-signed certificate kept under ``<data-dir>/tls``: made once, used again while it
has more than ``RENEW_BEFORE`` left, and recognised as such without cryptography when its
file carries the expiry line ``generate_self_signed`` writes (issue 21: a start then does not
import cryptography's x509)."""

from __future__ import annotations

import datetime
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart_py.tls import NOT_AFTER_NOTE, TLSManager, _still_valid, generate_self_signed

NOW = datetime.datetime.now(datetime.UTC)


def test_the_file_says_its_expiry_and_still_loads(tmp_path):
    cert_pem, key_pem = generate_self_signed("mail.example.test")
    first, _, rest = cert_pem.partition(b"\n")
    assert first.startswith(NOT_AFTER_NOTE)
    noted = datetime.datetime.fromisoformat(first[len(NOT_AFTER_NOTE) :].decode())
    assert noted == x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
    assert rest.startswith(b"-----BEGIN CERTIFICATE-----")
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        tmp_path / "c.pem", tmp_path / "k.pem"
    )


def test_a_start_uses_the_kept_certificate_and_renews_a_noted_expiry(tmp_path):
    manager = TLSManager(tmp_path)
    cert, _ = manager.self_signed("mail.example.test")
    made = cert.read_bytes()
    assert manager.self_signed("mail.example.test")[0].read_bytes() == made  # kept
    soon = (NOW + datetime.timedelta(days=3)).isoformat().encode()
    cert.write_bytes(NOT_AFTER_NOTE + soon + b"\n" + made.partition(b"\n")[2])
    assert not _still_valid(cert)
    assert manager.self_signed("mail.example.test")[0].read_bytes() != made  # made anew


def test_a_file_without_the_line_is_read_as_a_certificate(tmp_path):
    """Certificates made before the line existed, or put there by hand."""

    def pem(days: int) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.test")])
        built = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return built.public_bytes(serialization.Encoding.PEM)

    path = tmp_path / "cert.pem"
    path.write_bytes(pem(200))
    assert _still_valid(path)
    path.write_bytes(pem(10))
    assert not _still_valid(path)
    path.write_bytes(NOT_AFTER_NOTE + b"not a date\n" + pem(200))  # a bad line: parsed
    assert _still_valid(path)
    path.write_bytes(b"garbage")
    assert not _still_valid(path)
