"""The web pages' defences, without a browser: a real server on ephemeral ports and a real
HTTP client (tests/support/web.py) that posts forms as a browser does.

* CSRF: every form that changes something (every page answering POST, from the site's own
  page tables, so a new page is covered without editing this file) refuses a POST without its
  token, with a wrong one, with another session's, and from another Origin: 403, and the
  database is byte for byte what it was.
* Cookies: HttpOnly, SameSite=Strict, Path=/, and Secure with the ``__Host-`` prefix, except
  over plain HTTP from loopback (a developer's browser on ``make run``).
* Headers: Content-Security-Policy, X-Frame-Options: DENY and nosniff on every page,
  redirects and error pages included.
* Sessions end when idle, at their lifetime, at sign-out and at a password change.
* ``/admin/``: every page (from the page tables) is 403 for an account that is not an
  administrator, whatever the method.
* Plain HTTP from outside ``http.allow-plaintext-from``: every page refused, the sign-in form
  first.
* The sign-in form is throttled by the directory's throttle, the one the mail protocols share.
* Every POST form of every page carries its csrf field, every input has its label, and no
  page has an inline script, style or event handler (the CSP would refuse them).
"""

from __future__ import annotations

import imaplib
import re
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support.logs import capture_log
from tests.support.proxied import ProxiedIMAP
from tests.support.servers import LOG_OF_ONE_WORKER, PATCHES_THE_WORKER
from tests.support.web_raw import RawWebClient

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")

ADMIN = ("admin@example.test", "the administrator's password")
ALICE = ("alice@example.test", "alice's own password")
SESSION = "stalwart-session"  # over TLS, or plain HTTP from outside loopback: __Host-...
SIGN_IN = "/account/sign-in"
IDLE = 120  # http.web.session-idle-timeout, seconds
LIFETIME = 600  # http.web.session-lifetime

CONFIG = """
[server]
hostname = "mail.example.test"

[server.tls]
certificate = "{cert}"
private-key = "{key}"

[directory.throttle]
failure-delay = "0s"
block-time = "10m"  # a block outlasts the test, however loaded the machine

[queue]
hold = true

[server.http.web]
session-idle-timeout = "{idle}s"
session-lifetime = "{lifetime}s"

# plain HTTP on loopback: what a developer's browser uses with `make run`
[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"

# behind a proxy: the PROXY header names the client; 10.0.0.0/8 may use plain HTTP
[server.listener.proxied]
bind = "127.0.0.1:0"
protocol = "http"
proxy.trusted-networks = ["127.0.0.0/8"]
http.allow-plaintext-from = ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]

[server.listener.https]
bind = "127.0.0.1:0"
protocol = "http"
tls.implicit = true

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
proxy.trusted-networks = ["127.0.0.0/8"]
"""


@pytest.fixture
def server(start_server, server_cert):
    cert, key = server_cert
    server = start_server(CONFIG.format(cert=cert, key=key, idle=IDLE, lifetime=LIFETIME))
    server.add_account(*ADMIN, is_admin=True)
    server.add_account(*ALICE)
    return server


def client(server, listener: str = "http", **options) -> RawWebClient:
    return RawWebClient(server.address(listener), **options)


def signed_in(server, who: tuple[str, str], **options) -> RawWebClient:
    return client(server, **options).signed_in(*who)


def web_pages():
    """Every page of the site, from its page tables (protocols/http/web/site.py)."""
    from protocols.http.web.site import page_tables

    return [page for table in page_tables() for page in table.pages]


# A value for each path parameter a page may have: a real object where one is likely to be
# named so, so that a POST let through by mistake would change something the dump shows.
PARAMETERS = {
    "address": ALICE[0],
    "account": ALICE[0],
    "domain": "example.test",
    "alias": "postmaster@example.test",
    "id": "1",
    "name": "example.test",  # /admin/domains/{name}
    "listener": "imap",
}


def concrete(template: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PARAMETERS.get(m.group(1), "x"), template)


def dump(server) -> list[str]:
    """The store's database as SQL text (SQLite's own dump), to compare before and after."""
    path = Path(server.context.store.path)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return list(db.iterdump())


def is_sign_in_redirect(page) -> bool:
    return page.status in (302, 303) and page.location.startswith(SIGN_IN)


# -- CSRF --------------------------------------------------------------------------------------


DUMPS_SQLITE = "compares the SQLite file's dump before and after"


@pytest.mark.own_store_backend(DUMPS_SQLITE)
def test_every_form_refuses_a_post_without_or_with_a_wrong_token(server):
    from protocols.http.web.pages import Level

    forms = [page for page in web_pages() if "POST" in page.methods]
    assert any(page.template == SIGN_IN for page in forms)
    admin = signed_in(server, ADMIN)
    token = admin.get("/account/").csrf()
    other = signed_in(server, ALICE).get("/account/").csrf()  # another session's token
    before = dump(server)
    refused = []
    for page in forms:
        path = concrete(page.template)
        attempts = {
            "no token": {"csrf": ""},
            "a wrong token": {"csrf": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")},
            "another session's token": {"csrf": other},
        }
        if page.level is Level.PUBLIC:  # the sign-in form: the double-submit cookie
            attempts = {"no token": {}, "a wrong token": {"csrf": "made-up"}}
        for what, fields in attempts.items():
            answer = admin.post(path, {**fields, "address": ALICE[0], "password": ALICE[1]})
            if answer.status != 403:
                refused.append(f"POST {page.template} with {what}: {answer.status}")
        # The right token from another site: the Origin decides.
        answer = admin.request(
            "POST",
            path,
            f"csrf={token}".encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.test"},
        )
        if answer.status != 403:
            refused.append(f"POST {page.template} from another Origin: {answer.status}")
    assert refused == []
    assert dump(server) == before, "a refused POST changed the store"
    assert admin.get("/account/").status == 200  # and the session is still good


def test_the_sign_in_form_without_its_cookie_is_refused_and_opens_no_session(server):
    browser = client(server)
    form = browser.get(SIGN_IN)
    token = form.csrf()
    browser.cookies.clear()  # the double-submit cookie lost (or never set: another site)
    answer = browser.post(SIGN_IN, {"csrf": token, "address": ALICE[0], "password": ALICE[1]})
    assert answer.status == 403
    assert SESSION not in browser.cookies
    assert not server.run(server.context.store.list_web_sessions, alice_id(server))


def alice_id(server) -> int:
    account = server.run(server.context.store.get_account, ALICE[0])
    return account.id


# -- cookies -----------------------------------------------------------------------------------


def flags(cookie) -> set[str]:
    return {name for name in cookie.attributes if name in ("httponly", "secure")} | {
        f"{name}={value}"
        for name, value in cookie.attributes.items()
        if name in ("samesite", "path")
    }


def session_cookie(browser: RawWebClient):
    found = [c for c in browser.set_cookies if c.name.endswith(SESSION) and c.value]
    assert found, [c.name for c in browser.set_cookies]
    return found[-1]


def test_cookies_on_plain_http_from_loopback_are_not_secure_but_strict(server):
    browser = signed_in(server, ALICE)
    cookie = session_cookie(browser)
    assert cookie.name == SESSION  # no __Host- prefix without Secure: browsers require it
    assert flags(cookie) == {"httponly", "samesite=Strict", "path=/"}
    for each in browser.set_cookies:  # the sign-in form's token cookie too
        assert {"httponly", "samesite=Strict", "path=/"} <= flags(each), each


def test_cookies_over_tls_are_secure_with_the_host_prefix(server, client_tls):
    browser = signed_in(server, ALICE, listener="https", tls=client_tls)
    cookie = session_cookie(browser)
    assert cookie.name == f"__Host-{SESSION}"
    assert flags(cookie) == {"httponly", "secure", "samesite=Strict", "path=/"}
    assert "domain" not in cookie.attributes  # __Host-: no Domain
    assert all("secure" in each.attributes for each in browser.set_cookies)
    assert browser.get("/account/").status == 200


def test_plain_http_from_an_allowed_network_still_gets_secure_cookies(server):
    """10.0.0.0/8 may use plain HTTP here, but a session cookie in clear over a network is
    what Secure exists to prevent: it is Secure, so a browser there keeps none."""
    browser = client(server, "proxied", proxied_from="10.0.0.7")
    form = browser.get(SIGN_IN)
    assert form.status == 200
    assert all("secure" in each.attributes for each in browser.set_cookies)
    answer = browser.post(SIGN_IN, {"csrf": form.csrf(), "address": ALICE[0], "password": ALICE[1]})
    assert answer.status in (302, 303)
    cookie = session_cookie(browser)
    assert cookie.name == f"__Host-{SESSION}" and "secure" in cookie.attributes


# -- headers on every page ---------------------------------------------------------------------


def check_headers(page, what: str) -> list[str]:
    problems = []
    csp = page.header("content-security-policy") or ""
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    if directives.get("frame-ancestors") != "frame-ancestors 'none'":
        problems.append(f"{what}: CSP frame-ancestors: {csp!r}")
    if "default-src" not in directives or "'unsafe-inline'" in csp or "'unsafe-eval'" in csp:
        problems.append(f"{what}: CSP: {csp!r}")
    if page.header("x-frame-options") != "DENY":
        problems.append(f"{what}: X-Frame-Options {page.header('x-frame-options')!r}")
    if page.header("x-content-type-options") != "nosniff":
        problems.append(f"{what}: X-Content-Type-Options {page.header('x-content-type-options')!r}")
    return problems


def test_every_page_has_the_csp_and_frame_headers(server):
    admin = signed_in(server, ADMIN)
    anonymous = client(server)
    problems = []
    for page in web_pages():
        if "GET" not in page.methods:
            continue
        path = concrete(page.template)
        problems += check_headers(admin.get(path), f"GET {path} (administrator)")
        problems += check_headers(anonymous.get(path), f"GET {path} (not signed in)")
    for path in ("/account", "/account/no-such-page", "/admin/no-such-page", "/static/nope.css"):
        problems += check_headers(admin.get(path), f"GET {path}")
    problems += check_headers(admin.request("DELETE", "/account/"), "DELETE /account/ (405)")
    problems += check_headers(signed_in(server, ALICE).get("/admin/"), "/admin/ as a user (403)")
    outside = client(server, "proxied", proxied_from="192.0.2.1").get(SIGN_IN)
    assert outside.status == 403
    problems += check_headers(outside, "the plain-HTTP refusal")
    assert problems == []


# -- sessions end ------------------------------------------------------------------------------


class FakeTime:
    """Stands for the ``time`` module in protocols/http/web/sessions.py: the test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeTime:
    from protocols.http.web import sessions

    fake = FakeTime()
    monkeypatch.setattr(sessions, "time", fake)
    return fake


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_a_session_ends_when_idle(server, clock):
    browser = signed_in(server, ALICE)
    clock.now += IDLE - 1
    assert browser.get("/account/").status == 200  # used: idle from now again
    clock.now += IDLE - 1
    assert browser.get("/account/").status == 200
    clock.now += IDLE
    assert is_sign_in_redirect(browser.get("/account/"))
    assert not server.run(server.context.store.list_web_sessions, alice_id(server))


@pytest.mark.single_worker(PATCHES_THE_WORKER)
def test_a_session_ends_at_its_lifetime_however_much_it_is_used(server, clock):
    browser = signed_in(server, ALICE)
    started = clock.now
    while clock.now + IDLE / 2 < started + LIFETIME:
        clock.now += IDLE / 2
        assert browser.get("/account/").status == 200, clock.now - started
    clock.now = started + LIFETIME
    assert is_sign_in_redirect(browser.get("/account/"))


def test_signing_out_ends_the_session_even_for_a_copied_cookie(server):
    browser = signed_in(server, ALICE)
    stolen = dict(browser.cookies)
    token = browser.get("/account/").csrf()
    answer = browser.post("/account/sign-out", {"csrf": token})
    assert answer.status in (302, 303)
    assert SESSION not in browser.cookies  # cleared
    thief = client(server)
    thief.cookies.update(stolen)
    assert is_sign_in_redirect(thief.get("/account/"))


def test_a_password_change_ends_every_session_of_the_account(server):
    from tests.support.http import ApiClient

    first = signed_in(server, ALICE)
    second = signed_in(server, ALICE)
    admin = signed_in(server, ADMIN)
    with ApiClient(server.address("http"), auth=ADMIN) as api:
        changed = api.request("PATCH", f"/api/accounts/{ALICE[0]}", {"password": "a new one here"})
        assert changed.status == 200, changed.body
    assert is_sign_in_redirect(first.get("/account/"))
    assert is_sign_in_redirect(second.get("/account/"))
    assert admin.get("/account/").status == 200  # another account's session goes on


# -- /admin/ for administrators only -----------------------------------------------------------


def admin_pages():
    from protocols.http.web.pages import Level

    return [page for page in web_pages() if page.level is Level.ADMIN]


@pytest.mark.own_store_backend(DUMPS_SQLITE)
def test_every_admin_page_is_forbidden_to_an_account_that_is_not_an_administrator(server):
    pages = admin_pages()
    if not pages:
        pytest.skip("no /admin/ pages yet")
    alice = signed_in(server, ALICE)
    token = alice.get("/account/").csrf()  # her own, right token: the refusal is the access
    anonymous = client(server)
    before = dump(server)
    wrong = []
    for page in pages:
        path = concrete(page.template)
        for method in page.methods:
            if method == "POST":
                answer = alice.post(path, {"csrf": token, "address": ALICE[0]})
            else:
                answer = alice.request(method, path)
            if answer.status != 403:
                wrong.append(f"{method} {page.template}: {answer.status}")
            if method == "GET" and not is_sign_in_redirect(anonymous.get(path)):
                wrong.append(f"GET {page.template} not signed in: no redirect to sign in")
    assert wrong == []
    assert dump(server) == before


# -- plain HTTP --------------------------------------------------------------------------------


def test_plain_http_from_outside_the_allowed_networks_is_refused_on_every_page(server, client_tls):
    outside = client(server, "proxied", proxied_from="192.0.2.1")
    wrong = []
    for page in web_pages():
        path = concrete(page.template)
        for method in page.methods:
            answer = outside.request(method, path)
            if answer.status != 403 or "HTTPS" not in answer.text:
                wrong.append(f"{method} {path}: {answer.status}")
    assert wrong == []
    assert outside.set_cookies == []  # not even the sign-in form's token
    # The same address over TLS signs in.
    over_tls = client(server, "https", tls=client_tls)
    assert over_tls.sign_in(*ALICE).status in (302, 303)


# -- the throttle ------------------------------------------------------------------------------


def imap_login(server, peer: str, user: str, password: str) -> str:
    with ProxiedIMAP(peer, *server.address("imap")) as imap:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error as error:
            found = re.search(r"\[([A-Z-]+)\]", str(error))
            return found.group(1) if found else str(error)
        imap.logout()
        return "ok"


@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_failed_imap_logins_block_the_web_sign_in_from_that_address(server):
    with capture_log() as log:
        burst = [imap_login(server, "10.0.0.9", ALICE[0], "wrong") for _ in range(6)]
        assert burst == ["AUTHENTICATIONFAILED"] * 5 + ["UNAVAILABLE"]
        browser = client(server, "proxied", proxied_from="10.0.0.9")
        answer = browser.sign_in(*ALICE)  # the right password, from the blocked address
        assert answer.status == 429
        assert int(answer.header("retry-after") or 0) >= 1
        assert "Too many failed attempts" in answer.text
        assert SESSION not in "".join(browser.cookies)
        # from another address, the account is not locked
        assert client(server, "proxied", proxied_from="10.0.0.10").sign_in(*ALICE).status == 303
    assert "login failed from 10.0.0.9: mechanism=WEB reason=throttled" in log.text


@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_failed_web_sign_ins_block_imap_from_that_address(server):
    browser = client(server, "proxied", proxied_from="10.0.0.11")
    with capture_log() as log:
        statuses = [browser.sign_in(ALICE[0], "wrong").status for _ in range(6)]
    assert statuses == [403] * 5 + [429]
    assert "login failed from 10.0.0.11: mechanism=WEB reason=invalid-credentials" in log.text
    assert ALICE[1] not in log.text
    assert imap_login(server, "10.0.0.11", ALICE[0], ALICE[1]) == "UNAVAILABLE"
    assert imap_login(server, "10.0.0.12", ALICE[0], ALICE[1]) == "ok"


# -- what every form carries -------------------------------------------------------------------


class Forms(HTMLParser):
    """The forms of a page: each one's method, whether it has a ``csrf`` field, and the
    inputs (by id) that no ``<label for=...>`` names."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.labels: set[str] = set()
        self.inputs: list[tuple[str, str]] = []  # (id, name) of the visible inputs
        self.inline: list[str] = []  # inline scripts and styles (the CSP refuses them)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if "style" in found:
            self.inline.append(f"<{tag} style=...>")
        if any(name.startswith("on") for name in found):
            self.inline.append(f"<{tag} on...=>")
        if tag == "script" and "src" not in found:
            self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "form":
            self.forms.append({"method": found.get("method", "get").lower(), "csrf": False})
        elif tag == "label" and "for" in found:
            self.labels.add(found["for"])
        elif tag in ("input", "textarea", "select"):
            kind = found.get("type", "text")
            if tag == "input" and kind == "hidden":
                if found.get("name") == "csrf" and self.forms:
                    self.forms[-1]["csrf"] = True
            elif kind not in ("submit", "button"):
                self.inputs.append((found.get("id", ""), found.get("name", "")))


def test_every_post_form_has_a_csrf_field_and_every_input_a_label(server):
    admin = signed_in(server, ADMIN)
    problems = []
    checked = 0
    for page in web_pages():
        if "GET" not in page.methods:
            continue
        path = concrete(page.template)
        answer = admin.get(path)
        if answer.status != 200:
            continue  # a redirect (the code page without a pending session)
        forms = Forms()
        forms.feed(answer.text)
        for form in forms.forms:
            if form["method"] == "post" and not form["csrf"]:
                problems.append(f"{path}: a POST form without its csrf field")
        for ident, name in forms.inputs:
            if not ident or ident not in forms.labels:
                problems.append(f"{path}: input {name or ident!r} has no <label for=...>")
        problems += [f"{path}: {what}" for what in forms.inline]
        checked += len(forms.inputs)
    assert problems == []
    assert checked > 20  # the pages' inputs were seen (the parser found the forms)
