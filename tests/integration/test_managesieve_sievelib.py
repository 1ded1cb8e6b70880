"""ManageSieve over a real socket with sievelib's client: upload, list, activate, download,
rename, delete, quotas, STARTTLS with the test CA, and authentication failures."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sievelib.managesieve import Client

from tests.support.managesieve import PASSWORD, config
from tests.support.servers import METRICS_OF_ONE_WORKER

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

SCRIPT = (
    'require "fileinto";\r\nif header :contains "subject" "news" {\r\n  fileinto "News";\r\n}\r\n'
)


@pytest.fixture
def server(start_server, server_cert):
    server = start_server(
        config(
            server_cert,
            "managesieve.auth.require-tls = false\nmanagesieve.max-scripts = 3\n"
            'managesieve.max-script-size = "2K"\n',
        )
    )
    server.add_account("bob@example.test", PASSWORD)
    return server


def connect(server, user="bob@example.test", password=PASSWORD, **options) -> Client:
    host, port = server.address("managesieve")
    client = Client(host, port)
    options.setdefault("authmech", "PLAIN")
    assert client.connect(user, password, **options), client.errmsg
    return client


def logins(server) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(server.context.metrics.render().decode()):
        if family.name == "stalwart_managesieve_logins":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["result"]] = sample.value
    return out


def test_upload_list_activate_download_rename_delete(server):
    client = connect(server)
    assert "fileinto" in client.get_sieve_capabilities()
    assert client.get_implementation().startswith("stalwart-py")
    assert client.listscripts() == (None, [])
    assert client.havespace("main", len(SCRIPT))
    assert client.putscript("main", SCRIPT)
    assert client.checkscript(SCRIPT)
    assert client.putscript("other", "keep;")
    assert client.listscripts() == (None, ["main", "other"])
    assert client.setactive("main")
    assert client.listscripts() == ("main", ["other"])
    assert client.getscript("main") == SCRIPT.replace("\r\n", "\n").rstrip("\n")
    assert not client.deletescript("main")
    assert client.errcode == b"ACTIVE"
    assert client.renamescript("main", "renamed")
    assert client.listscripts() == ("renamed", ["other"])
    assert not client.renamescript("renamed", "other")
    assert client.errcode == b"ALREADYEXISTS"
    assert not client.getscript("main")
    assert client.errcode == b"NONEXISTENT"
    assert client.setactive("")  # deactivate
    assert client.listscripts() == (None, ["other", "renamed"])
    assert client.deletescript("renamed")
    assert not client.deletescript("renamed")
    assert client.errcode == b"NONEXISTENT"
    assert not client.setactive("nope")
    assert client.errcode == b"NONEXISTENT"
    client.logout()
    account = server.run(server.context.store.get_account, "bob@example.test")
    stored = server.run(server.context.store.list_scripts, account.id)
    assert [(s.name, s.active) for s in stored] == [("other", False)]


def test_a_syntax_error_is_refused_with_line_and_column(server):
    client = connect(server)
    assert not client.putscript("bad", 'require "fileinto";\r\nif true {\r\n  fileinto;\r\n}\r\n')
    assert client.errmsg == (
        b'line 3, column 3: "fileinto" takes mailbox (string); found 0 arguments'
    )
    assert not client.checkscript("keep")
    assert client.errmsg.startswith(b'line 1, column 5: expected ";"')
    assert client.listscripts() == (None, [])


def test_quotas(server):
    client = connect(server)
    for name in ("a", "b", "c"):
        assert client.putscript(name, "keep;")
    assert not client.putscript("d", "keep;")
    assert client.errcode == b"QUOTA/MAXSCRIPTS"
    assert not client.havespace("d", 10)
    assert client.errcode == b"QUOTA/MAXSCRIPTS"
    assert client.putscript("a", "discard;")  # replacing does not count
    big = "# " + "x" * 3000 + "\r\nkeep;\r\n"
    assert not client.putscript("a", big)
    assert client.errcode == b"QUOTA/MAXSIZE"
    huge = "# " + "x" * 200_000 + "\r\nkeep;\r\n"  # over the literal limit: skipped unread
    assert not client.putscript("a", huge)
    assert client.errcode == b"QUOTA/MAXSIZE"
    assert not client.havespace("a", 5000)
    assert client.errcode == b"QUOTA/MAXSIZE"
    assert client.getscript("a") == "discard;"  # the session went on


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_starttls_with_the_test_ca(start_server, server_cert, ca, tmp_path, monkeypatch):
    server = start_server(config(server_cert))  # auth.require-tls: the default
    server.add_account("bob@example.test", PASSWORD)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    host, port = server.address("managesieve")
    plain = Client(host, port)
    assert not plain.connect("bob@example.test", PASSWORD, authmech="PLAIN")  # no SASL yet
    assert plain.errmsg == b"No suitable mechanism found"
    client = connect(server, starttls=True)
    assert client.putscript("main", SCRIPT) and client.setactive("main")
    assert client.listscripts() == ("main", [])
    assert logins(server) == {"success": 1.0}


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_authentication_failures(server):
    host, port = server.address("managesieve")
    client = Client(host, port)
    assert not client.connect("bob@example.test", "wrong password", authmech="PLAIN")
    assert client.errmsg == b"Authentication failed"
    unknown = Client(host, port)
    assert not unknown.connect("nobody@example.test", PASSWORD, authmech="LOGIN")
    assert unknown.errmsg == b"Authentication failed"
    assert connect(server, authmech="LOGIN").listscripts() == (None, [])
    assert logins(server) == {"failure": 2.0, "success": 1.0}
