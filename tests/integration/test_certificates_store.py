"""The certificate store the ACME client uses: install() takes effect at the next handshake,
TLS-ALPN-01 (RFC 8737) is answered only to clients offering acme-tls/1, and what is served
is listed by GET /api/certificates and in /metrics."""

from __future__ import annotations

import datetime
import hashlib
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from stalwart_py.certificates import CertificateError
from tests.integration.test_certificates_sni import IMPLICIT, issue, names, served, table
from tests.integration.test_http_metrics import scrape, value
from tests.support.clients import LineClient
from tests.support.http import ADMIN, ApiClient, start_http

ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 6.1, id-pe-acmeIdentifier


def challenge_certificate(domain: str, key_authorization: str) -> tuple[bytes, bytes, bytes]:
    """The validation certificate of RFC 8737 3: self-signed, the domain as its only SAN, and
    the critical acmeIdentifier extension holding SHA-256(key authorization) as a DER OCTET
    STRING. Returns (cert PEM, key PEM, the extension's DER value)."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    der = b"\x04\x20" + digest  # OCTET STRING, 32 octets
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME challenge")])
    moment = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - datetime.timedelta(minutes=1))
        .not_valid_after(moment + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, der), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, der


def handshake(address, server_name: str, alpn: list[str] | None):
    """(leaf certificate, negotiated ALPN, whether the server closed at once after it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        try:
            closed = tls.recv(100) == b""
        except (ssl.SSLError, ConnectionResetError):
            closed = True
        return cert, tls.selected_alpn_protocol(), closed


@pytest.mark.parametrize("own_certificate", [False, True])
def test_tls_alpn_01_is_answered_only_to_acme_tls_1(
    start_server, tmp_path, ca, server_cert, own_certificate
):
    issue(ca, tmp_path, "one", "mail.one.test")
    text = table(tmp_path, "one", default=True) + IMPLICIT
    if own_certificate:  # a listener with its own certificate answers the challenge as well
        text += f'tls.certificate = "{server_cert[0]}"\ntls.private-key = "{server_cert[1]}"\n'
    server = start_server(text)
    address = server.address("probe")
    store = server.context.certificates
    cert_pem, key_pem, der = challenge_certificate("mail.one.test", "token.thumbprint")
    server.run(store.set_alpn_challenge, "Mail.One.Test", cert_pem, key_pem)

    cert, alpn, closed = handshake(address, "mail.one.test", ["acme-tls/1"])
    assert alpn == "acme-tls/1"
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert extension.critical and extension.value.value == der
    assert names(cert) == ["mail.one.test"]
    assert closed  # RFC 8737 3: nothing is exchanged after the validation handshake

    # a mail client asking for the same name meanwhile gets the real certificate
    usual, alpn, closed = handshake(address, "mail.one.test", None)
    assert alpn is None and not closed
    assert usual.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    with pytest.raises(x509.ExtensionNotFound):
        usual.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    # acme-tls/1 for another name: no challenge there
    other, alpn, _ = handshake(address, "other.test", ["acme-tls/1"])
    assert alpn is None
    with pytest.raises(x509.ExtensionNotFound):
        other.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    # other protocols offered beside acme-tls/1 do not hide it
    _, alpn, _ = handshake(address, "mail.one.test", ["h2", "http/1.1", "acme-tls/1"])
    assert alpn == "acme-tls/1"

    server.run(store.clear_alpn_challenge, "mail.one.test")
    after, alpn, _ = handshake(address, "mail.one.test", ["acme-tls/1"])
    assert alpn is None
    with pytest.raises(x509.ExtensionNotFound):
        after.extensions.get_extension_for_oid(ACME_IDENTIFIER)


def test_install_swaps_at_once_and_open_sessions_keep_theirs(start_server, tmp_path, ca):
    issue(ca, tmp_path, "one", "mail.one.test")
    server = start_server(table(tmp_path, "one", default=True) + IMPLICIT)
    address = server.address("probe")
    store = server.context.certificates
    assert names(served(address, "new.acme.test")) == ["mail.one.test"]  # the default

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with LineClient(address, tls=client_context, server_hostname="mail.one.test") as open_one:
        open_one.info()
        first = ca.issue_cert("new.acme.test", "mail.one.test")
        chain = b"".join(blob.bytes() for blob in first.cert_chain_pems)
        server.run(store.install, "acme:main", chain, first.private_key_pem.bytes())
        assert names(served(address, "new.acme.test")) == ["new.acme.test", "mail.one.test"]
        # an exact name of two certificates: the one valid longest (trustme's are alike, so
        # either; both name it)
        assert "mail.one.test" in names(served(address, "mail.one.test"))
        open_one.sock.sendall(b"still here\n")
        assert open_one.readline() == b"still here\n"  # the session shook hands before

    kept = server.run(server.context.store.installed_certificates)
    assert [(c.id, c.chain) for c in kept] == [("acme:main", chain)]  # the store's, not files
    assert not (tmp_path / "var" / "certificates").exists()

    # bad input: a reason, and the installed certificate stays
    other = ca.issue_cert("new.acme.test")
    wrong_key = ca.issue_cert("x.test").private_key_pem.bytes()
    with pytest.raises(CertificateError, match="not the key of the first certificate"):
        server.run(store.install, "acme:main", other.cert_chain_pems[0].bytes(), wrong_key)
    with pytest.raises(CertificateError, match="expected PEM certificates"):
        server.run(store.install, "acme:main", b"garbage", wrong_key)
    assert server.run(server.context.store.installed_certificates)[0].chain == chain
    again = served(address, "new.acme.test")
    assert again.serial_number == x509.load_pem_x509_certificate(chain).serial_number

    # a restart reads the installed certificate back
    server.__exit__(None, None, None)
    server = start_server(table(tmp_path, "one", default=True) + IMPLICIT)
    assert names(served(server.address("probe"), "new.acme.test"))[0] == "new.acme.test"
    listed = {c["id"]: c for c in server.context.certificates.describe()}
    assert listed["acme:main"]["source"] == "acme"


def test_the_api_and_metrics_list_the_certificates(start_server, tmp_path, ca):
    issue(ca, tmp_path, "one", "mail.one.test")
    issue(ca, tmp_path, "wild", "*.wild.test")
    extra = table(tmp_path, "one", default=True) + table(tmp_path, "wild") + IMPLICIT
    server = start_http(start_server, extra=extra)
    with ApiClient(server.address("http"), auth=ADMIN) as admin:
        answer = admin.get("/api/certificates")
        assert answer.status == 200
        listed = {c["id"]: c for c in answer.json["certificates"]}
        samples = scrape(admin)
    with ApiClient(server.address("http"), auth=None) as anonymous:
        assert anonymous.get("/api/certificates").status == 401
    one = listed["one"]
    assert one["source"] == "file" and one["names"] == ["mail.one.test"] and one["default"]
    assert one["files"] == [str(tmp_path / "one.pem"), str(tmp_path / "one.key")]
    assert "O=trustme" in one["issuer"]
    not_after = datetime.datetime.fromisoformat(one["not-after"])
    left = (not_after - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert abs(one["expires-in"] - left) < 60
    assert listed["wild"]["names"] == ["*.wild.test"] and not listed["wild"]["default"]
    expiry = value(samples, "stalwart_certificate_expiry_seconds", id="one", source="file")
    assert abs(expiry - left) < 60
    stamp = value(
        samples, "stalwart_certificate_not_after_timestamp_seconds", id="wild", source="file"
    )
    assert stamp == pytest.approx(
        datetime.datetime.fromisoformat(listed["wild"]["not-after"]).timestamp()
    )


def test_details_are_merged_into_describe(start_server, tmp_path, ca):
    issue(ca, tmp_path, "one", "mail.one.test")
    server = start_server(table(tmp_path, "one", default=True) + IMPLICIT)
    store = server.context.certificates
    store.add_details(
        lambda: {"one": {"next_renewal": "2027-01-01T00:00:00Z"}, "later": {"last_error": "x"}}
    )
    listed = {c["id"]: c for c in store.describe()}
    assert listed["one"]["next_renewal"] == "2027-01-01T00:00:00Z"
    assert listed["one"]["names"] == ["mail.one.test"]
    assert listed["later"] == {"id": "later", "source": "acme", "last_error": "x"}


def test_an_earlier_versions_installed_certificate_is_imported_and_served(
    start_server, tmp_path, ca
):
    """The upgrade: what ACME installed as files (and its account key) goes into the store at
    the first start, so the certificate is served and nothing is ordered again."""
    issue(ca, tmp_path, "one", "mail.one.test")
    issued = ca.issue_cert("old.acme.test")
    old = tmp_path / "var" / "certificates" / "acme:old"
    old.mkdir(parents=True)
    (old / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    (old / "key.pem").write_bytes(issued.private_key_pem.bytes())
    account = tmp_path / "var" / "acme" / "acme:old"
    account.mkdir(parents=True)
    (account / "account.key").write_bytes(b"an account key")
    server = start_server(table(tmp_path, "one", default=True) + IMPLICIT)
    assert names(served(server.address("probe"), "old.acme.test")) == ["old.acme.test"]
    [kept] = server.run(server.context.store.acme_accounts)
    assert (kept.id, kept.private_key) == ("acme:old", b"an account key")
    assert not old.exists() and (tmp_path / "var" / "certificates.imported").is_dir()
