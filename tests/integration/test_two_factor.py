"""Two-factor sign-in (``stalwart_py.two_factor``) through the JSON API and the mail
protocols, against a real server: enrolment with codes computed here by RFC 6238's own
algorithm (not the server's module), a code refused when replayed, a recovery code good once,
the account's own password refused over each mail protocol with a clear answer while an app
password opens it, and disabling giving the own password back."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sievelib.managesieve import Client as SieveClient

from protocols.http import Http
from tests.integration.test_app_passwords import (
    CONFIG,
    create,
    imap_login,
    pop3_login,
    sieve_login,
    smtp_login,
)
from tests.support.http import ApiClient, Referee
from tests.support.logs import capture_log
from tests.support.servers import LOG_OF_ONE_WORKER
from tests.support.totp import rfc6238

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")
REFEREE = Referee(Http().app.document)
ADMIN = ("admin@example.test", "the administrator's password")
ALICE = ("alice@example.test", "alice's own password")
BOB = ("bob@example.test", "bob's own password")
TIMEOUT = 20


@pytest.fixture
def server(start_server):
    server = start_server(CONFIG)
    server.add_account(*ADMIN, is_admin=True)
    server.add_account(*ALICE)
    server.add_account(*BOB)
    return server


def imap_refusal(server, user: str, password: str) -> str:
    """The text of the NO answering LOGIN (the test fails if it is accepted)."""
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        with pytest.raises(imaplib.IMAP4.error) as refused:
            client.login(user, password)
        client.logout()
    return str(refused.value)


def enrol(client: ApiClient, user: str) -> tuple[str, int, list[str]]:
    """Enrol ``user``: (the secret, the step of the code that confirmed it, recovery codes)."""
    path = f"/api/accounts/{user}/totp"
    started = client.post(path)
    assert started.status == 201, started.body
    secret = started.json["secret"]
    assert started.json["uri"].startswith(f"otpauth://totp/mail.example.test:{user}?secret=")
    assert client.get(path).json == {"enabled": False, "pending": True, "recovery-codes-left": 0}
    # ``step`` is the test's now; the server's may be one later, and accepts this one still.
    step = int(time.time()) // 30
    confirmed = client.post(f"{path}/confirm", {"code": rfc6238(secret, step)})
    assert confirmed.status == 200, confirmed.body
    return secret, step, confirmed.json["recovery-codes"]


@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_enrol_sign_in_with_codes_and_disable(server):
    user, own = ALICE
    path = f"/api/accounts/{user}/totp"
    with (
        capture_log() as log,
        ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice,
    ):
        phone = create(alice, "phone", ["imap"])
        secret, step, recovery = enrol(alice, user)
        assert len(recovery) == len(set(recovery)) == 10

        # IMAP: the own password, though right, is refused with the reason; an app password
        # opens it.
        text = imap_refusal(server, user, own)
        assert "two-factor sign-in is enabled for this account: use an app password" in text
        assert imap_login(server, user, phone["password"])
        assert "reason=two-factor-required user=<alice@example.test>" in log.text

        # HTTP: the password alone, or with a wrong code, is refused.
        alone = alice.get(path)
        assert alone.status == 401
        assert "send the password, '$' and the current code" in alone.json["error"]
        assert alice.get(path, auth=(user, f"{own}$123456x")).status == 401
        assert alice.get(path, auth=(user, f"wrong$ {rfc6238(secret, step + 1)}")).status == 401
        # The next step's code (within the tolerance) opens it, once: a replay is refused,
        # and so is the confirming step's code, which is older.
        with_code = (user, f"{own}${rfc6238(secret, step + 1)}")
        status = alice.get(path, auth=with_code)
        assert status.status == 200
        assert status.json == {"enabled": True, "pending": False, "recovery-codes-left": 10}
        assert alice.get(path, auth=with_code).status == 401
        assert alice.get(path, auth=(user, f"{own}${rfc6238(secret, step)}")).status == 401

        # A recovery code, typed leniently, once.
        with_recovery = (user, f"{own}${recovery[0].upper()}")
        assert alice.get(path, auth=with_recovery).json["recovery-codes-left"] == 9
        assert alice.get(path, auth=with_recovery).status == 401
        with_another = (user, f"{own}${recovery[1]}")
        assert alice.request("DELETE", path, auth=with_another).status == 204

        # Disabled: the own password opens IMAP and the API again.
        assert imap_login(server, user, own)
        assert alice.get(path).json == {
            "enabled": False,
            "pending": False,
            "recovery-codes-left": 0,
        }

    assert secret not in log.text
    assert not any(code in log.text for code in recovery)


def test_who_may_manage_two_factor_sign_in(server):
    path = f"/api/accounts/{ALICE[0]}/totp"
    with ApiClient(server.address("http"), referee=REFEREE) as client:
        assert client.get(path, auth=BOB).status == 403
        assert client.post(path, auth=BOB).status == 403
        assert client.request("DELETE", path, auth=BOB).status == 403
        with ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice:
            enrol(alice, ALICE[0])
        assert client.post(path, auth=ADMIN).status == 409  # enabled: disable first
        # The administrator disables it for an account that lost its phone and its codes.
        assert client.request("DELETE", path, auth=ADMIN).status == 204
        assert client.request("DELETE", path, auth=ADMIN).status == 404
        assert client.post(f"{path}/confirm", {"code": "123456"}, auth=ADMIN).status == 422
        assert client.post(f"{path}/confirm", {"code": "12345"}, auth=ADMIN).status == 400
        assert client.get(path, auth=ALICE).json["enabled"] is False


def test_every_mail_protocol_says_why_the_own_password_is_refused(server):
    """SMTP, POP3 and ManageSieve answer as IMAP does, with their own framing, and still take
    an app password allowed for them."""
    user, own = ALICE
    wanted = "two-factor sign-in is enabled for this account: use an app password"
    with ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice:
        app = create(alice, "desktop", ["smtp", "pop3", "managesieve"])
        enrol(alice, user)

    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        client.ehlo("client.example.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as smtp_refusal:
            client.login(user, own)
    assert smtp_refusal.value.smtp_code == 535
    assert wanted in smtp_refusal.value.smtp_error.decode()
    assert smtp_login(server, user, app["password"])

    host, port = server.address("pop3")
    pop3 = poplib.POP3(host, port, timeout=TIMEOUT)
    try:
        pop3.user(user)
        with pytest.raises(poplib.error_proto) as pop3_refusal:
            pop3.pass_(own)
    finally:
        pop3.quit()
    assert f"-ERR [AUTH] {wanted}" in str(pop3_refusal.value)
    assert pop3_login(server, user, app["password"])

    host, port = server.address("managesieve")
    sieve = SieveClient(host, port)
    try:
        assert not sieve.connect(user, own, authmech="PLAIN")
        assert wanted in sieve.errmsg.decode()
    finally:
        sieve.logout()
    assert sieve_login(server, user, app["password"])


def test_one_code_sent_at_once_on_several_connections_gets_in_once(server):
    """The replay check is the store's update of the last step accepted, not a read then a
    write: requests racing with one code (on any worker) are let in once."""
    user, own = ALICE
    path = f"/api/accounts/{user}/totp"
    with ApiClient(server.address("http"), auth=ALICE, referee=REFEREE) as alice:
        secret, step, _ = enrol(alice, user)
    with_code = (user, f"{own}${rfc6238(secret, step + 1)}")
    clients = [ApiClient(server.address("http"), referee=REFEREE) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(lambda c: c.get(path, auth=with_code).status, clients))
    finally:
        for client in clients:
            client.close()
    assert sorted(answers) == [200, 401, 401, 401]
