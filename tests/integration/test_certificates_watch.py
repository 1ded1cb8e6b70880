"""[certificate."<id>"] files replaced on disk (a certbot renewal) are served by the next
handshake after server.certificate-watch sees them, without a restart and without ending the
sessions already open; a broken replacement keeps the certificate in force, with the error."""

from __future__ import annotations

import ssl

import trustme
from cryptography import x509

from tests.integration.test_certificates_sni import issue, names, served, table
from tests.support.clients import LineClient
from tests.support.servers import ServerProcess, write_config

ECHO = """
[server.listener.echo]
bind = "127.0.0.1:0"
protocol = "echo"
tls.implicit = true
"""


def serial(cert: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).serial_number


def test_a_replaced_file_is_served_after_the_watch_sees_it(tmp_path, ca, client_tls, echo_plugin):
    first = issue(ca, tmp_path, "one", "mail.one.test")
    issue(ca, tmp_path, "two", "mail.two.test")
    text = '[server]\ncertificate-watch = "100ms"\n\n' + table(tmp_path, "one", True)
    path = write_config(tmp_path, text + table(tmp_path, "two") + ECHO)
    with ServerProcess(path, env=echo_plugin) as server:
        address = server.address("echo")
        assert served(address, "mail.one.test").serial_number == serial(first)
        with LineClient(address, tls=client_tls, server_hostname="mail.one.test") as session:
            assert session.readline().startswith(b"+OK")
            renewed = issue(ca, tmp_path, "one", "mail.one.test", "smtp.one.test")  # in place
            server.wait_event("reloaded")
            after = served(address, "mail.one.test")
            assert after.serial_number == serial(renewed)
            assert names(after) == ["mail.one.test", "smtp.one.test"]
            assert names(served(address, "smtp.one.test"))[0] == "mail.one.test"
            session.sock.sendall(b"still here\r\n")  # the session from before goes on
            assert session.readline() == b"still here\r\n"
            assert session.sock.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(
                first.cert_chain_pems[0].bytes().decode()
            )
        assert "a certificate file changed: reloading" in server.log()
        assert "certificate one: mail.one.test, smtp.one.test" in server.log()


def test_a_broken_replacement_keeps_the_certificate_in_force(tmp_path, ca, echo_plugin):
    issue(ca, tmp_path, "one", "mail.one.test")
    two = issue(ca, tmp_path, "two", "mail.two.test")
    text = '[server]\ncertificate-watch = "100ms"\n\n' + table(tmp_path, "one", True)
    path = write_config(tmp_path, text + table(tmp_path, "two") + ECHO)
    with ServerProcess(path, env=echo_plugin) as server:
        address = server.address("echo")
        (tmp_path / "two.pem").write_text("-----BEGIN CERTIFICATE-----\nhalf writ")
        failed = server.wait_event("reload-failed")
        [error] = failed["errors"]
        assert f'{path}: certificate."two": {tmp_path / "two.pem"}: expected PEM' in error
        assert served(address, "mail.two.test").serial_number == serial(two)
        assert "reload failed, nothing changed" in server.log()
        # a key that is not the certificate's: refused as well
        other = ca.issue_cert("mail.two.test")
        other.cert_chain_pems[0].write_to_path(str(tmp_path / "two.pem"))
        failed = server.wait_event("reload-failed")
        assert "cannot use certificate" in failed["errors"][0]
        assert served(address, "mail.two.test").serial_number == serial(two)
        # the whole pair written: taken
        fixed = issue(ca, tmp_path, "two", "mail.two.test")
        server.wait_event("reloaded")
        assert served(address, "mail.two.test").serial_number == serial(fixed)
