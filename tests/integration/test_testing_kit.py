"""The plugin test kit (stalwart_py.testing) itself: its fixtures start real servers from TOML
snippets, create accounts, deliver, and hand back connected clients."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from email.message import EmailMessage
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from stalwart_py.plugin import Connection, Protocol
from stalwart_py.testing import with_certificate

PASSWORD = "kit-password-1"


class Greet(Protocol):
    """Says the peer's address and the listener it came in on, then closes."""

    name = "greet"
    api_versions = (1, 2)  # uses nothing version 2 added

    async def handle(self, conn: Connection) -> None:
        await conn.send(f"hello {conn.peer.host} on {conn.listener.id}\n".encode())


@pytest.fixture
def stalwart_config() -> str:
    return """
[server]
hostname = "mail.example.test"

[server.listener.smtps]
bind = "127.0.0.1:0"
protocol = "smtp"
tls.implicit = true

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
"""


def message(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "alice@remote.test"
    mail["To"] = "bob@example.test"
    mail["Subject"] = subject
    mail.set_content("from the kit\n")
    return bytes(mail)


def test_a_protocol_class_served_on_an_ephemeral_port(stalwart_servers):
    server = stalwart_servers.start(
        '[server.listener.hi]\nbind = "127.0.0.1:0"\nprotocol = "greet"\n',
        protocols={"greet": Greet},
    )
    _, port = server.address("hi")
    assert port != 0
    with server.connect("hi") as client:
        assert client.readline() == b"hello 127.0.0.1 on hi\n"
    server.wait_until(lambda: server.registry.open_connections == 0)
    assert server.metric("stalwart_connections_accepted_total", listener="hi") == 1


def test_accounts_delivery_and_clients(stalwart_server):
    server = stalwart_server
    server.add_account("bob@example.test", PASSWORD)
    [result] = server.deliver("bob@example.test", message("delivered"))
    assert result.ok, result
    [stored] = server.messages("bob@example.test")
    assert b"Subject: delivered" in stored
    # implicit TLS with the kit's certificate, trusted by the kit's client context
    with server.smtp("smtps", tls=True) as smtp:
        assert smtp.ehlo("kit.test")[0] == 250
        smtp.sendmail("alice@remote.test", ["bob@example.test"], message("by smtp"))
    imap = server.imap("imap")
    try:
        imap.starttls(server.client_tls)
        imap.login("bob@example.test", PASSWORD)
        assert imap.select("INBOX") == ("OK", [b"2"])
        status, data = imap.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert status == "OK" and b"Subject: by smtp" in data[0][1]
    finally:
        imap.logout()


def test_a_second_server_in_its_own_directory(stalwart_servers, tmp_path):
    snippet = '[server.listener.hi]\nbind = "127.0.0.1:0"\nprotocol = "greet"\n'
    first = stalwart_servers.start(snippet, protocols={"greet": Greet})
    second = stalwart_servers.start(snippet, protocols={"greet": Greet}, directory=tmp_path / "two")
    assert first.address("hi") != second.address("hi")
    for server in (first, second):
        with server.connect("hi") as client:
            assert client.readline().startswith(b"hello")


@pytest.mark.parametrize(
    "snippet",
    [
        '[server.listener.a]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n',
        '[server]\nhostname = "h.test"\n\n[server.listener.a]\nbind = "1.2.3.4:0"\n',
        '[server.tls]\nmin-version = "1.3"\n\n[server.listener.a]\nbind = "1.2.3.4:0"\n',
        '[server]\ntls.implicit = true # all\n[server.listener.a]\nprotocol = "smtp"\n',
    ],
)
def test_the_certificate_goes_where_toml_allows(snippet):
    text = with_certificate(snippet, Path("/c.pem"), Path("/k.pem"))
    tls = tomllib.loads(text)["server"]["tls"]
    assert tls["certificate"] == "/c.pem" and tls["private-key"] == "/k.pem"
    assert tomllib.loads(snippet)["server"]["listener"] == tomllib.loads(text)["server"]["listener"]


def test_a_certificate_of_its_own_is_left_alone():
    snippet = '[server.tls]\ncertificate = "/mine.pem"\nprivate-key = "/mine.key"\n'
    assert with_certificate(snippet, Path("/c.pem"), Path("/k.pem")) == snippet


def test_registered_by_entry_point_and_quiet_on_import():
    [entry] = [e for e in entry_points(group="pytest11") if e.value.startswith("stalwart_py")]
    assert entry.value == "stalwart_py.testing.fixtures"
    # Every pytest run of a project that has stalwart-py installed loads the plugin: loading
    # it must not start, import or change anything of the server.
    probe = (
        "import sys, stalwart_py.testing.fixtures as f; "
        "print(sorted(m for m in sys.modules if m.startswith('stalwart_py')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert (
        loaded.strip() == "['stalwart_py', 'stalwart_py.testing', 'stalwart_py.testing.fixtures']"
    )
