"""[certificate."<id>"]: real TLS clients get the certificate for the name they ask for (SNI),
the default without a name or with an unknown one, and a listener's own certificate wins."""

from __future__ import annotations

import socket
import ssl

import pytest
import trustme
from cryptography import x509

from stalwart_py.config import ConfigError
from stalwart_py.server import Server, StartupError
from tests.support.protocols import Probe
from tests.support.servers import write_config

IMPLICIT = """
[server.listener.probe]
bind = "127.0.0.1:0"
protocol = "probe"
tls.implicit = true
"""


def issue(ca: trustme.CA, directory, name: str, *names: str):
    """A certificate for ``names`` written as ``<name>.pem`` and ``<name>.key``."""
    cert = ca.issue_cert(*names)
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / f"{name}.pem"))
    cert.private_key_pem.write_to_path(str(directory / f"{name}.key"))
    return cert


def table(directory, name: str, default: bool = False) -> str:
    return (
        f'[certificate."{name}"]\ncert = "{directory / (name + ".pem")}"\n'
        f'private-key = "{directory / (name + ".key")}"\n' + ("default = true\n" if default else "")
    )


def served(address, server_name: str | None, alpn: list[str] | None = None) -> x509.Certificate:
    """The leaf certificate a handshake with this SNI (None: no SNI) is answered with."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test looks at what is served, trusted or not
    if alpn:
        context.set_alpn_protocols(alpn)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return san.value.get_values_for_type(x509.DNSName)


@pytest.fixture
def three(tmp_path, ca):
    """Certificates "one" (the default), "two" and "wild" (*.wild.test) on files."""
    issue(ca, tmp_path, "one", "mail.one.test")
    issue(ca, tmp_path, "two", "mail.two.test", "imap.two.test")
    issue(ca, tmp_path, "wild", "*.wild.test")
    return table(tmp_path, "one", default=True) + table(tmp_path, "two") + table(tmp_path, "wild")


def test_the_certificate_is_chosen_by_sni(start_server, three):
    server = start_server(three + IMPLICIT)
    address = server.address("probe")
    assert names(served(address, "mail.two.test")) == ["mail.two.test", "imap.two.test"]
    assert names(served(address, "imap.two.test"))[0] == "mail.two.test"
    assert names(served(address, "MAIL.TWO.TEST"))[0] == "mail.two.test"  # RFC 4343
    assert names(served(address, "mail.one.test")) == ["mail.one.test"]
    # RFC 6125 6.4.3: the wildcard is one whole left-most label
    assert names(served(address, "imap.wild.test")) == ["*.wild.test"]
    assert names(served(address, "a.b.wild.test")) == ["mail.one.test"]  # two labels: default
    assert names(served(address, "wild.test")) == ["mail.one.test"]
    # no SNI, and a name no certificate has: the default
    assert names(served(address, None)) == ["mail.one.test"]
    assert names(served(address, "unknown.test")) == ["mail.one.test"]


def test_the_session_sees_the_name_the_client_asked_for(start_server, three, client_tls):
    from tests.support.clients import LineClient

    server = start_server(three + IMPLICIT)
    with LineClient(server.address("probe"), tls=client_tls, server_hostname="mail.two.test") as c:
        info = c.info()  # verified against the test CA for mail.two.test
    assert info["sni"] == "mail.two.test"


def test_without_a_default_the_host_name_then_self_signed(start_server, tmp_path, ca):
    issue(ca, tmp_path, "two", "mail.two.test")
    issue(ca, tmp_path, "host", "mx.host.test")
    text = table(tmp_path, "two") + IMPLICIT
    server = start_server('[server]\nhostname = "mx.host.test"\n' + text)
    address = server.address("probe")
    assert names(served(address, "mail.two.test")) == ["mail.two.test"]
    own = served(address, "unknown.test")
    assert own.issuer == own.subject  # the self-signed certificate of the host name
    assert names(own) == ["mx.host.test"]
    server.__exit__(None, None, None)
    # a certificate covering the host name is what a client without a name gets
    text = table(tmp_path, "two") + table(tmp_path, "host") + IMPLICIT
    server = start_server('[server]\nhostname = "mx.host.test"\n' + text)
    assert names(served(server.address("probe"), None)) == ["mx.host.test"]
    assert names(served(server.address("probe"), "unknown.test")) == ["mx.host.test"]


def test_without_certificate_tables_the_self_signed_one_as_before(start_server):
    server = start_server('[server]\nhostname = "mx.host.test"\n' + IMPLICIT)
    cert = served(server.address("probe"), "mail.two.test")
    assert cert.issuer == cert.subject and names(cert) == ["mx.host.test"]
    listed = server.context.certificates.describe()
    assert [(c["source"], c["names"]) for c in listed] == [("self-signed", ["mx.host.test"])]


def test_a_listener_certificate_wins(start_server, three, server_cert):
    cert, key = server_cert
    server = start_server(
        three + IMPLICIT + f'tls.certificate = "{cert}"\ntls.private-key = "{key}"\n'
    )
    for name in ("mail.two.test", None, "unknown.test"):
        assert "mail.example.test" in names(served(server.address("probe"), name))


def test_two_defaults_are_a_configuration_error(tmp_path, ca):
    issue(ca, tmp_path, "one", "mail.one.test")
    issue(ca, tmp_path, "two", "mail.two.test")
    path = write_config(
        tmp_path, table(tmp_path, "one", True) + table(tmp_path, "two", True) + IMPLICIT
    )
    with pytest.raises(ConfigError) as raised:
        Server(path, protocols={"probe": Probe})
    assert f"{path}: certificate.two.default: expected one default certificate at most; " in str(
        raised.value
    )


def test_a_missing_or_wrong_file_stops_the_start(tmp_path, ca, start_server):
    issue(ca, tmp_path, "one", "mail.one.test")
    (tmp_path / "two.pem").write_text("not a certificate")
    (tmp_path / "two.key").write_text("")
    with pytest.raises(StartupError) as raised:
        start_server(table(tmp_path, "one") + table(tmp_path, "two") + IMPLICIT)
    message = str(raised.value)
    assert 'certificate."two": ' in message and str(tmp_path / "two.pem") in message
    assert "expected PEM certificates" in message
    path = write_config(tmp_path, '[certificate."x"]\ncert = 5\ndefaults = true\n' + IMPLICIT)
    with pytest.raises(ConfigError) as raised:
        Server(path, protocols={"probe": Probe})
    assert sorted(str(raised.value).splitlines()) == [
        f"{path}: certificate.x.cert: expected a file path, found 5 (an integer)",
        f'{path}: certificate.x.defaults: unknown key (did you mean "default"?)',
    ]
    path = write_config(tmp_path, '[certificate."x"]\ncert = "x.pem"\n' + IMPLICIT)
    with pytest.raises(ConfigError) as raised:
        Server(path, protocols={"probe": Probe})
    assert str(raised.value) == f"{path}: certificate.x.private-key: is required"
