"""Real milters from Debian through our milter client: mail over SMTP to our server, through
rspamd's proxy worker in milter mode and OpenDKIM, read back over IMAP.

* rspamd (scanning in-process) refuses the GTUBE test message with its own reply and adds its
  headers (X-Spamd-Result, X-Rspamd-Queue-Id, ...) to a clean one;
* OpenDKIM signs mail from its domain; dkimpy verifies the stored message's signature;
* both in one chain, rspamd first, as a site runs them.
"""

from __future__ import annotations

import email
import smtplib

import dkim
import pytest

from tests.support.auth_world import rsa_key
from tests.support.milters import PASSWORD, filter_config, milter_table
from tests.support.real_milters import opendkim, rspamd
from tests.support.smtp import connect

pytestmark = [pytest.mark.interop, pytest.mark.heavy, pytest.mark.timeout(600)]

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(sender: str, body: str) -> str:
    return (
        f"From: Alice <{sender}>\r\nTo: bob@example.test\r\nSubject: Lunch\r\n"
        "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <lunch.1@example.test>\r\n"
        f"\r\n{body}\r\n"
    )


@pytest.fixture(scope="module")
def rspamd_port(tmp_path_factory):
    with rspamd(tmp_path_factory.mktemp("rspamd")) as port:
        yield port


def start(start_server, server_cert, tables: str, names: str):
    server = start_server(filter_config(server_cert, tables, names))
    server.add_account("bob@example.test", PASSWORD)
    return server


def send(server, text: str, sender: str = "alice@remote.test") -> None:
    with connect(server) as client:
        client.sendmail(sender, ["bob@example.test"], text)


def read_inbox(server) -> list[bytes]:
    import imaplib

    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as imap:
        imap.login("bob@example.test", PASSWORD)
        _, [count] = imap.select("INBOX", readonly=True)
        if count == b"0":
            return []
        _, data = imap.fetch("1:*", "(BODY.PEEK[])")
        return [item[1] for item in data if isinstance(item, tuple)]


def test_rspamd_refuses_gtube(start_server, server_cert, rspamd_port):
    server = start(start_server, server_cert, milter_table("rspamd", rspamd_port), '["rspamd"]')
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, message("alice@remote.test", GTUBE))
    assert refused.value.smtp_code == 554
    assert b"Gtube pattern" in refused.value.smtp_error
    assert read_inbox(server) == []


def test_rspamd_adds_its_headers_to_a_clean_message(start_server, server_cert, rspamd_port):
    server = start(start_server, server_cert, milter_table("rspamd", rspamd_port), '["rspamd"]')
    send(server, message("alice@remote.test", "Shall we meet at noon?"))
    (stored,) = read_inbox(server)
    parsed = email.message_from_bytes(stored)
    assert parsed["X-Spamd-Result"].startswith("default: False")
    assert parsed["X-Rspamd-Server"]
    assert parsed["X-Rspamd-Queue-Id"]  # our session id, given to it as the "i" macro
    assert parsed.get_payload().strip() == "Shall we meet at noon?"


def test_opendkim_signs_through_the_milter(start_server, server_cert, tmp_path, rspamd_port):
    key = rsa_key()
    with opendkim(tmp_path / "opendkim", "example.test", "mail", key.private) as port:
        tables = milter_table("rspamd", rspamd_port) + milter_table("opendkim", port)
        server = start(start_server, server_cert, tables, '["rspamd", "opendkim"]')
        send(server, message("alice@example.test", "Signed, I hope."), "alice@example.test")
    (stored,) = read_inbox(server)
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test" in stored
    assert b"X-Spamd-Result: " in stored  # the chain: rspamd's header, then the signature

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail._domainkey.example.test."
        return key.record.encode()

    assert dkim.verify(stored, dnsfunc=dns)
