"""server.certificate-watch: a renewed certificate is picked up without a restart."""

from __future__ import annotations

import signal
import ssl

from tests.support.clients import LineClient
from tests.support.servers import ServerProcess, write_config


def issue(ca, directory, name):
    cert = ca.issue_cert("mail.example.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    return cert


def served_certificate(address, client_tls) -> bytes:
    with LineClient(address, tls=client_tls, server_hostname="mail.example.test") as client:
        client.readline()
        return client.sock.getpeercert(binary_form=True)


def test_a_renewed_certificate_is_reloaded(tmp_path, ca, client_tls, echo_plugin):
    first = issue(ca, tmp_path, "first")
    path = write_config(
        tmp_path,
        f"""
[server]
certificate-watch = "100ms"

[server.listener.echo]
bind = "127.0.0.1:0"
protocol = "echo"
tls.implicit = true
tls.certificate = "{tmp_path / "cert.pem"}"
tls.private-key = "{tmp_path / "key.pem"}"
""",
    )
    with ServerProcess(path, env=echo_plugin) as server:
        address = server.address("echo")
        before = served_certificate(address, client_tls)
        assert before == ssl.PEM_cert_to_DER_cert(first.cert_chain_pems[0].bytes().decode())
        renewed = issue(ca, tmp_path, "renewed")  # as certbot would, in place
        server.wait_event("reloaded")
        after = served_certificate(address, client_tls)
        assert after == ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
        assert "a certificate file changed: reloading" in server.log()


def test_a_broken_renewal_keeps_the_working_certificate(tmp_path, ca, client_tls, echo_plugin):
    first = issue(ca, tmp_path, "first")
    path = write_config(
        tmp_path,
        f"""
[server.listener.echo]
bind = "127.0.0.1:0"
protocol = "echo"
tls.implicit = true
tls.certificate = "{tmp_path / "cert.pem"}"
tls.private-key = "{tmp_path / "key.pem"}"
""",
    )
    with ServerProcess(path, env=echo_plugin) as server:
        address = server.address("echo")
        (tmp_path / "cert.pem").write_text("half written")
        assert served_certificate(address, client_tls)  # handshakes never read the files
        server.signal(signal.SIGHUP)
        failed = server.wait_event("reload-failed")
        assert "server.listener.echo.tls: cannot use certificate" in failed["errors"][0]
        still = served_certificate(address, client_tls)
        assert still == ssl.PEM_cert_to_DER_cert(first.cert_chain_pems[0].bytes().decode())
