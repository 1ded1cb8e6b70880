"""App passwords (``stalwart_py.app_passwords``) through the JSON API and the mail protocols:
real imaplib, smtplib, poplib and sievelib clients against a real server, each login with an
app password allowed for its protocol accepted, every other refused, a revoked one refused at
once (though the authentication cache had just accepted it), and the secret never logged."""

from __future__ import annotations

import imaplib
import poplib
import smtplib

import pytest
from sievelib.managesieve import Client as SieveClient

from protocols.http import Http
from tests.support.http import ApiClient, Referee
from tests.support.logs import capture_log
from tests.support.servers import LOG_OF_ONE_WORKER, METRICS_OF_ONE_WORKER

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")
REFEREE = Referee(Http().app.document)
ADMIN = ("admin@example.test", "the administrator's password")
ALICE = ("alice@example.test", "alice's own password")
BOB = ("bob@example.test", "bob's own password")
TIMEOUT = 20

CONFIG = """
[server]
hostname = "mail.example.test"

[directory.throttle]
failure-delay = 0

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.allow-plaintext = true

[server.listener.pop3]
bind = "127.0.0.1:0"
protocol = "pop3"
pop3.auth.allow-plaintext = true

[server.listener.managesieve]
bind = "127.0.0.1:0"
protocol = "managesieve"
managesieve.auth.require-tls = false

[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
"""


@pytest.fixture
def server(start_server):
    server = start_server(CONFIG)
    server.add_account(*ADMIN, is_admin=True)
    server.add_account(*ALICE)
    server.add_account(*BOB)
    return server


def imap_login(server, user: str, password: str) -> bool:
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            return False
        client.logout()
        return True


def smtp_login(server, user: str, password: str) -> bool:
    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        client.ehlo("client.example.test")
        try:
            client.login(user, password)
        except smtplib.SMTPAuthenticationError:
            return False
        return True


def pop3_login(server, user: str, password: str) -> bool:
    host, port = server.address("pop3")
    client = poplib.POP3(host, port, timeout=TIMEOUT)
    try:
        client.user(user)
        client.pass_(password)
    except poplib.error_proto:
        return False
    finally:
        client.quit()
    return True


def sieve_login(server, user: str, password: str) -> bool:
    host, port = server.address("managesieve")
    client = SieveClient(host, port)
    ok = bool(client.connect(user, password, authmech="PLAIN"))
    client.logout()
    return ok


LOGINS = {"imap": imap_login, "smtp": smtp_login, "pop3": pop3_login, "managesieve": sieve_login}


def create(client: ApiClient, name: str, protocols: list[str], user=ALICE) -> dict:
    answer = client.post(
        f"/api/accounts/{user[0]}/app-passwords", {"name": name, "protocols": protocols}
    )
    assert answer.status == 201, answer.body
    return answer.json


@pytest.mark.single_worker(f"{LOG_OF_ONE_WORKER}; {METRICS_OF_ONE_WORKER}")
def test_each_protocol_accepts_an_app_password_allowed_for_it_and_no_other(server):
    user = ALICE[0]
    with (
        capture_log() as log,
        ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice,
    ):
        phone = create(alice, "phone", ["imap", "smtp"])
        laptop = create(alice, "laptop", ["pop3", "managesieve"])
        assert phone["protocols"] == ["imap", "smtp"]
        listed = alice.get(f"/api/accounts/{user}/app-passwords").json["app-passwords"]
        assert [a["name"] for a in listed] == ["phone", "laptop"]
        assert all("password" not in a for a in listed)

        for protocol, login in LOGINS.items():
            allowed = phone if protocol in phone["protocols"] else laptop
            refused = laptop if allowed is phone else phone
            assert login(server, user, allowed["password"]), protocol
            # Typed in upper case without the dashes: the same password.
            typed = allowed["password"].replace("-", "").upper()
            assert login(server, user, typed), protocol
            assert not login(server, user, refused["password"]), protocol
            assert login(server, user, ALICE[1]), protocol  # the main password still works
            metric = server.metric("stalwart_app_password_logins_total", protocol=protocol)
            assert metric == 2, protocol

        # Never HTTP: neither the API nor anything behind HTTP Basic.
        answer = alice.get(f"/api/accounts/{user}/app-passwords", auth=(user, phone["password"]))
        assert answer.status == 401

    assert "app password <phone> over imap" in log.text
    assert "app password <laptop> over managesieve" in log.text
    for secret in (phone["password"], laptop["password"]):
        assert secret not in log.text
        assert secret.replace("-", "") not in log.text
        assert secret.replace("-", "").upper() not in log.text


def test_a_revoked_app_password_is_refused_at_once(server):
    """Under ``--server-workers N`` the logins may land on any worker: revocation is seen by
    all, as each login reads the app password rows afresh."""
    user = ALICE[0]
    with ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice:
        phone = create(alice, "phone", ["imap", "smtp"])
        assert imap_login(server, user, phone["password"])  # now in the authentication cache
        assert smtp_login(server, user, phone["password"])
        answer = alice.request("DELETE", f"/api/accounts/{user}/app-passwords/{phone['id']}")
        assert answer.status == 204
        assert not imap_login(server, user, phone["password"])
        assert not smtp_login(server, user, phone["password"])
        assert alice.get(f"/api/accounts/{user}/app-passwords").json == {"app-passwords": []}
        again = alice.request("DELETE", f"/api/accounts/{user}/app-passwords/{phone['id']}")
        assert again.status == 404


def test_who_may_manage_app_passwords(server):
    alice_path = f"/api/accounts/{ALICE[0]}/app-passwords"
    with ApiClient(server.address("http"), referee=REFEREE) as client:
        assert client.get(alice_path, auth=BOB).status == 403
        body = {"name": "intruder", "protocols": ["imap"]}
        assert client.post(alice_path, body, auth=BOB).status == 403
        made = client.post(alice_path, {"name": "by the admin", "protocols": ["imap"]}, auth=ADMIN)
        assert made.status == 201
        assert client.request("DELETE", f"{alice_path}/{made.json['id']}", auth=BOB).status == 403
        listed = client.get(alice_path, auth=ADMIN).json["app-passwords"]
        assert [a["name"] for a in listed] == ["by the admin"]
        # Bob's own route is his, and he cannot revoke Alice's through it.
        bob_path = f"/api/accounts/{BOB[0]}/app-passwords"
        assert client.request("DELETE", f"{bob_path}/{made.json['id']}", auth=BOB).status == 404
        assert (
            client.get("/api/accounts/nobody@example.test/app-passwords", auth=ADMIN).status == 404
        )


def test_requests_the_server_refuses(server):
    path = f"/api/accounts/{ALICE[0]}/app-passwords"
    with ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice:
        assert alice.post(path, {"name": "x", "protocols": ["http"]}).status == 400
        assert alice.post(path, {"name": "x", "protocols": []}).status == 400
        assert alice.post(path, {"name": "  ", "protocols": ["imap"]}).status == 422
        assert alice.post(path, {"name": "a\x07b", "protocols": ["imap"]}).status == 422
        create(alice, "phone", ["imap"])
        assert alice.post(path, {"name": "phone", "protocols": ["pop3"]}).status == 409
        assert alice.request("DELETE", f"{path}/not-a-number").status == 404
