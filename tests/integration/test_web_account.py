"""Every user's pages (``/account/``) against a real server over real HTTP, each form doing
what it says, checked through the protocols it changes: a changed password opens IMAP and
ends the other sessions, an app password made on the page opens IMAP and is refused once
revoked, the overview shows the quota."""

from __future__ import annotations

import imaplib
import re
import time
from html.parser import HTMLParser

import pytest

from tests.support.logs import capture_log
from tests.support.servers import LOG_OF_ONE_WORKER
from tests.support.totp import rfc6238
from tests.support.web import WebClient, csrf_of

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")
ALICE = ("alice@example.test", "alice's own password")
CONFIG = """
[server]
hostname = "mail.example.test"

[directory]
min-password-length = 10

[directory.throttle]
failure-delay = 0

[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true
"""


@pytest.fixture
def server(start_server):
    server = start_server(CONFIG)
    server.add_account(*ALICE, quota_bytes=10_000_000)
    return server


def imap_login(server, user: str, password: str) -> bool:
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            return False
        client.logout()
    return True


def test_overview_shows_the_address_and_quota(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*ALICE)
        page = web.get("/account/").text
        assert ALICE[0] in page and "of 9.5 MiB" in page
        assert 'href="/admin/"' not in page  # not an administrator


def test_change_password(server):
    with WebClient(server.address("http")) as web, WebClient(server.address("http")) as other:
        web.sign_in(*ALICE)
        other.sign_in(*ALICE)
        form = web.get("/account/password")
        assert 'minlength="10"' in form.text
        fields = {"current": ALICE[1], "new": "short", "confirm": "short"}
        short = web.post("/account/password", {"csrf": csrf_of(form.text), **fields})
        assert short.status_code == 422 and "at least 10 characters" in short.text
        wrong = {"current": "not it", "new": "a brand new one", "confirm": "a brand new one"}
        refused = web.post("/account/password", {"csrf": csrf_of(form.text), **wrong})
        assert refused.status_code == 422 and "current password is not right" in refused.text
        good = {"current": ALICE[1], "new": "a brand new one", "confirm": "a brand new one"}
        changed = web.post("/account/password", {"csrf": csrf_of(form.text), **good})
        assert changed.status_code == 303
        assert changed.headers["location"] == "/account/password?done=changed"
        assert "Your password is changed" in web.get(changed.headers["location"]).text
        assert web.get("/account/").status_code == 200  # this browser stays signed in
        assert other.get("/account/").status_code == 303  # the other one does not
        assert imap_login(server, ALICE[0], "a brand new one")
        assert not imap_login(server, *ALICE)


def test_app_password_made_shown_once_and_revoked(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*ALICE)
        made = web.submit("/account/app-passwords", {"name": "my-phone", "protocol": ["imap"]})
        assert made.status_code == 200
        password = re.search(r'<p class="secret" id="new-password">([^<]+)</p>', made.text)[1]
        assert imap_login(server, ALICE[0], password)
        page = web.get("/account/app-passwords").text
        assert "my-phone" in page and password not in page  # shown once
        item = re.search(r'name="id" value="(\d+)"', page)[1]
        revoked = web.post("/account/app-passwords/revoke", {"csrf": csrf_of(page), "id": item})
        assert revoked.status_code == 303
        assert not imap_login(server, ALICE[0], password)
        assert "my-phone" not in web.get("/account/app-passwords").text
        empty = web.submit("/account/app-passwords", {"name": "", "protocol": ["imap"]})
        assert empty.status_code == 422 and "needs a name" in empty.text


def test_two_factor_enrolment_from_the_page(server):
    with WebClient(server.address("http")) as web:
        web.sign_in(*ALICE)
        assert "is <strong>off</strong>" in web.get("/account/two-factor").text
        started = web.submit("/account/two-factor", {"action": "start"})
        assert started.status_code == 200
        assert '<svg viewBox="' in started.text and 'role="img"' in started.text
        secret = re.search(r'<span class="secret" id="secret">([A-Z2-7]+)</span>', started.text)[1]
        step = int(time.time()) // 30
        wrong = web.submit("/account/two-factor", {"action": "confirm", "code": "000000"})
        assert wrong.status_code == 422 and "does not match" in wrong.text
        confirmed = web.submit(
            "/account/two-factor", {"action": "confirm", "code": rfc6238(secret, step)}
        )
        assert confirmed.status_code == 200
        codes = re.findall(
            r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", confirmed.text
        )
        assert len(codes) == 10
        page = web.get("/account/two-factor").text
        assert "is <strong>on</strong>" in page and codes[0] not in page and secret not in page
        assert not imap_login(server, *ALICE)  # the own password no longer opens IMAP
    with WebClient(server.address("http")) as web:
        # the code that confirmed is used up (no replay): a recovery code, then
        code_page = web.sign_in(*ALICE).headers["location"]
        assert code_page.startswith("/account/sign-in/code")
        assert web.submit(code_page, {"code": codes[0]}).status_code == 303
        refused = web.submit("/account/two-factor", {"action": "disable", "password": "no"})
        assert refused.status_code == 422
        off = web.submit("/account/two-factor", {"action": "disable", "password": ALICE[1]})
        assert off.status_code == 303
        assert "is <strong>off</strong>" in web.get("/account/two-factor").text
        assert imap_login(server, *ALICE)


def test_mail_client_setup_lists_the_listeners(server):
    imap_port = server.address("imap")[1]
    with WebClient(server.address("http")) as web:
        web.sign_in(*ALICE)
        page = web.get("/account/setup").text
        assert "Incoming mail (IMAP)" in page
        assert f"<td>mail.example.test</td><td>{imap_port}</td><td>STARTTLS</td>" in page
        assert "Outgoing mail (SMTP submission)" in page
        profile = re.search(r'href="(/apple/[^"]+\.mobileconfig)"', page)[1]
        assert profile == "/apple/alice@example.test.mobileconfig"
        answer = web.get(profile)
        assert answer.status_code == 200 and b"com.apple.mail.managed" in answer.content


class _Form(HTMLParser):
    """The labels and the form controls of a page, and any inline script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.labelled: set[str] = set()
        self.controls: list[str] = []  # ids ("" for a control without one)
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "label" and found.get("for"):
            self.labelled.add(found["for"] or "")
        if tag in ("input", "textarea", "select") and found.get("type") != "hidden":
            self.controls.append(found.get("id") or "")
        if tag == "style" or "style" in found or any(k.startswith("on") for k in found):
            self.inline.append(tag)
        if tag == "script" and "src" not in found:
            self.inline.append(tag)


@pytest.mark.parametrize(
    "path",
    [
        "/account/",
        "/account/password",
        "/account/app-passwords",
        "/account/two-factor",
        "/account/filters",
        "/account/filters/script",
        "/account/setup",
    ],
)
def test_every_control_has_a_label_and_nothing_is_inline(server, path):
    with WebClient(server.address("http")) as web:
        web.sign_in(*ALICE)
        if path == "/account/two-factor":  # the enrolment's form, with the QR code
            page = web.submit(path, {"action": "start"})
        else:
            page = web.get(path)
        assert page.status_code == 200
        parsed = _Form()
        parsed.feed(page.text)
        assert all(c and c in parsed.labelled for c in parsed.controls), parsed.controls
        assert parsed.inline == []


@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_no_password_secret_or_code_reaches_the_log(server):
    new = "another long password"
    with capture_log() as log, WebClient(server.address("http")) as web:
        web.sign_in(ALICE[0], "a wrong password")
        web.sign_in(*ALICE)
        started = web.submit("/account/two-factor", {"action": "start"})
        secret = re.search(r'id="secret">([A-Z2-7]+)<', started.text)[1]
        code = rfc6238(secret, int(time.time()) // 30)
        confirmed = web.submit("/account/two-factor", {"action": "confirm", "code": code})
        codes = re.findall(r"<li>([a-z2-9-]{19})</li>", confirmed.text)
        made = web.submit("/account/app-passwords", {"name": "laptop", "protocol": ["imap"]})
        app_password = re.search(r'id="new-password">([^<]+)<', made.text)[1]
        fields = {"current": ALICE[1], "new": new, "confirm": new}
        assert web.submit("/account/password", fields).status_code == 303
        web.post("/account/sign-out", {"csrf": csrf_of(web.get("/account/").text)})
        location = web.sign_in(ALICE[0], new).headers["location"]
        assert web.submit(location, {"code": codes[1]}).status_code == 303
    text = log.text
    assert "web: alice@example.test signed in" in text
    assert "mechanism=WEB reason=invalid-credentials" in text
    for secret_text in (ALICE[1], "a wrong password", new, secret, code, app_password, *codes):
        assert secret_text not in text
