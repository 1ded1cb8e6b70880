"""The web pages' foundation against a real server over real HTTP (httpx): sign-in and
sign-out, the cookie's flags, sessions ending (idle, lifetime, sign-out elsewhere, a password
changed), CSRF and Origin refusals, the headers of every page, the two-step sign-in with a
TOTP code, app passwords refused, the shared login throttle, plain HTTP refused outside
``http.allow-plaintext-from``, and administrators' pages closed to other accounts."""

from __future__ import annotations

import time

import pytest

from protocols.http.web import render, site
from protocols.http.web.pages import Level, PageTable, WebRequest
from protocols.http.web.sessions import token_hash
from tests.support.logs import capture_log
from tests.support.servers import LOG_OF_ONE_WORKER
from tests.support.totp import rfc6238
from tests.support.web import WebClient, csrf_of

ADMIN = ("admin@example.test", "the administrator's password")
ALICE = ("alice@example.test", "alice's own password")
CONFIG = """
[server]
hostname = "mail.example.test"

[directory.throttle]
failure-delay = 0
max-failures-per-address-and-account = 3

[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
"""
TLS_LISTENER = """
[server.listener.https]
bind = "127.0.0.1:0"
protocol = "http"
tls.implicit = true
"""


@pytest.fixture
def server(start_server):
    server = start_server(CONFIG)
    server.add_account(*ADMIN, is_admin=True)
    server.add_account(*ALICE)
    return server


def set_cookies(answer) -> list[str]:
    return answer.headers.get_list("set-cookie")


def test_every_page_carries_the_security_headers(server):
    with WebClient(server.address("http")) as web:
        for answer in (web.get("/account/sign-in"), web.get("/account/"), web.get("/nope/x")):
            if answer.status_code == 404 and "content-security-policy" not in answer.headers:
                continue  # not a web page at all: the API's 404
            assert answer.headers["content-security-policy"] == render.CSP
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "same-origin"
            assert answer.headers["cache-control"] == "no-store"
        page = web.get("/account/sign-in").text
        assert "<script" not in page and "style=" not in page and "<style" not in page
        assert '<meta name="viewport"' in page
        assert '<label for="address">' in page and '<label for="password">' in page
        css = web.get("/static/web.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert web.get("/static/../pyproject.toml").status_code == 404
        assert web.get("/account/no-such-page").status_code == 404


def test_sign_in_session_and_sign_out(server):
    with WebClient(server.address("http")) as web:
        before = web.get("/account/")
        assert before.status_code == 303
        assert before.headers["location"] == "/account/sign-in?next=/account/"
        wrong = web.sign_in(ALICE[0], "not the password")
        assert wrong.status_code == 403 and "Wrong address or password" in wrong.text
        answer = web.sign_in(*ALICE)
        assert answer.status_code == 303 and answer.headers["location"] == "/account/"
        (session_cookie,) = [c for c in set_cookies(answer) if c.startswith("stalwart-session=")]
        flags = {part.strip() for part in session_cookie.split(";")[1:]}
        # plain HTTP from a loopback peer: Secure (and with it __Host-) is left out
        assert flags == {"Path=/", "HttpOnly", "SameSite=Strict"}
        overview = web.get("/account/")
        assert overview.status_code == 200 and ALICE[0] in overview.text
        assert web.get("/account/sign-in").headers["location"] == "/account/"
        out = web.post("/account/sign-out", {"csrf": csrf_of(overview.text)})
        assert out.status_code == 303
        assert any("Max-Age=0" in c for c in set_cookies(out))
        assert web.get("/account/").status_code == 303


def test_next_stays_on_this_site(server):
    with WebClient(server.address("http")) as web:
        for target, expected in (
            ("/account/", "/account/"),
            ("//evil.example/account/", "/account/"),
            ("https://evil.example/", "/account/"),
            ("/account/\\evil", "/account/"),
        ):
            answer = web.sign_in(*ALICE, next_page=target)
            assert answer.headers["location"] == expected, target
            web.post("/account/sign-out", {"csrf": csrf_of(web.get("/account/").text)})


def test_cookie_is_secure_with_host_prefix_over_tls(start_server):
    server = start_server(CONFIG + TLS_LISTENER)
    server.add_account(*ALICE)
    with WebClient(server.address("https"), tls=True, host="localhost") as web:
        form = web.get("/account/sign-in")
        assert any(c.startswith("__Host-stalwart-sign-in=") for c in set_cookies(form))
        answer = web.post(
            "/account/sign-in",
            {"csrf": csrf_of(form.text), "address": ALICE[0], "password": ALICE[1]},
        )
        assert answer.status_code == 303
        (cookie,) = [c for c in set_cookies(answer) if c.startswith("__Host-stalwart-session=")]
        assert {p.strip() for p in cookie.split(";")[1:]} == {
            "Path=/",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
        }


def test_plain_http_is_refused_outside_allowed_networks(start_server):
    server = start_server(CONFIG + 'http.allow-plaintext-from = ["10.0.0.0/8"]\n')
    with WebClient(server.address("http")) as web:
        for path in ("/account/sign-in", "/account/", "/static/web.css"):
            answer = web.get(path)
            assert answer.status_code == 403, path
            assert "Use HTTPS" in answer.text and "password" not in answer.text.split("Use")[0]
            assert 'type="password"' not in answer.text


@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_csrf_and_origin_are_checked(server):
    with WebClient(server.address("http")) as web:
        # the sign-in form: its token must come with its cookie
        form = web.get("/account/sign-in")
        token = csrf_of(form.text)
        web.http.cookies.clear()
        with capture_log() as log:
            refused = web.post(
                "/account/sign-in", {"csrf": token, "address": ALICE[0], "password": ALICE[1]}
            )
        assert refused.status_code == 403
        assert "web: refused POST /account/sign-in from 127.0.0.1" in log.text
        assert ALICE[1] not in log.text
        web.sign_in(*ALICE)
        good = csrf_of(web.get("/account/").text)
        with capture_log() as log:
            assert web.post("/account/sign-out", {}).status_code == 403
            assert web.post("/account/sign-out", {"csrf": "x" + good}).status_code == 403
            other = {"csrf": good}
            headers = {"Origin": "https://evil.example"}
            assert web.post("/account/sign-out", other, headers=headers).status_code == 403
            null = {"Origin": "null"}  # a sandboxed frame, a data: URL
            assert web.post("/account/sign-out", other, headers=null).status_code == 403
        assert log.text.count("web: refused POST /account/sign-out") == 4
        assert "Origin 'https://evil.example' is not this site" in log.text
        assert web.get("/account/").status_code == 200  # still signed in
        # behind a proxy that ends TLS, the browser's https origin names this host still
        https = {"Origin": web.origin.replace("http://", "https://")}
        assert web.post("/account/sessions/end-others", other, headers=https).status_code == 303
        assert web.post("/account/sign-out", other, origin=False).status_code == 303


def test_app_passwords_do_not_open_the_pages(server):
    _, password = server.run(
        lambda: server.context.directory.add_app_password(ALICE[0], "phone", ["imap"])
    )
    with WebClient(server.address("http")) as web:
        assert web.sign_in(ALICE[0], password).status_code == 403


def test_throttled_after_repeated_failures(server):
    with WebClient(server.address("http")) as web:
        for _ in range(3):
            assert web.sign_in(ALICE[0], "wrong").status_code == 403
        answer = web.sign_in(*ALICE)
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) >= 1
        assert "Too many failed attempts" in answer.text


def test_two_step_sign_in_with_a_totp_code(server):
    directory = server.context.directory
    account = server.run(lambda: directory.store.get_account(ALICE[0]))
    enrolment = server.run(lambda: directory.two_factor.start(account.id, ALICE[0], "mail"))
    step = int(time.time()) // 30
    codes = server.run(
        lambda: directory.two_factor.confirm(account.id, rfc6238(enrolment.secret, step - 1))
    )
    with WebClient(server.address("http")) as web:
        first = web.sign_in(*ALICE)
        assert first.status_code == 303
        assert first.headers["location"] == "/account/sign-in/code?next=/account/"
        # half signed in: the account's pages still ask to sign in
        assert web.get("/account/").status_code == 303
        wrong = web.submit(first.headers["location"], {"code": "000000"})
        assert wrong.status_code == 403 and "not right" in wrong.text
        pending = web.cookie("stalwart-session")
        done = web.submit(first.headers["location"], {"code": rfc6238(enrolment.secret, step)})
        assert done.status_code == 303 and done.headers["location"] == "/account/"
        assert web.cookie("stalwart-session") != pending  # a new token once signed in
        assert web.get("/account/").status_code == 200
    with WebClient(server.address("http")) as web:
        again = web.sign_in(*ALICE)
        # the same code again is a replay; a recovery code works, once
        replay = web.submit(again.headers["location"], {"code": rfc6238(enrolment.secret, step)})
        assert replay.status_code == 403
        done = web.submit(again.headers["location"], {"code": codes[0]})
        assert done.status_code == 303


def test_sessions_end(server):
    store = server.context.store
    with WebClient(server.address("http")) as one, WebClient(server.address("http")) as two:
        one.sign_in(*ALICE)
        two.sign_in(*ALICE)
        key = token_hash(two.cookie("stalwart-session"))
        # idle too long
        server.run(lambda: store.touch_web_session(key, time.time() - 3600))
        assert two.get("/account/").status_code == 303
        assert server.run(lambda: store.get_web_session(key)) is None  # deleted when seen
        # sign out everywhere else
        two.sign_in(*ALICE)
        overview = one.get("/account/")
        assert overview.text.count("this browser") == 1
        ended = one.post("/account/sessions/end-others", {"csrf": csrf_of(overview.text)})
        assert ended.status_code == 303
        assert two.get("/account/").status_code == 303
        assert one.get("/account/").status_code == 200
        # a password changed anywhere ends every session
        server.run(lambda: server.context.directory.set_password(ALICE[0], "a new password"))
        assert one.get("/account/").status_code == 303
        # past its lifetime, however used
        one.sign_in(ALICE[0], "a new password")
        key = token_hash(one.cookie("stalwart-session"))
        server.run(
            lambda: store._engine.write(
                lambda txn: txn.execute(
                    "UPDATE web_sessions SET expires = ? WHERE token_hash = ?", (time.time(), key)
                )
            )
        )
        assert one.get("/account/").status_code == 303
        # deleting the account deletes its sessions
        one.sign_in(ALICE[0], "a new password")
        server.run(lambda: server.context.directory.delete_account(ALICE[0]))
        assert one.get("/account/").status_code == 303


@pytest.mark.single_worker("a page table patched into this process")
def test_administrators_pages_are_closed_to_other_accounts(server, monkeypatch):
    extra = PageTable()

    @extra.page("/admin/probe", level=Level.ADMIN)
    async def probe(web: WebRequest) -> object:
        return web.render("error.html", title="Probe", message="admin only")

    tables = site.page_tables()
    monkeypatch.setattr(site, "page_tables", lambda: (*tables, extra))
    site.site.cache_clear()
    try:
        with WebClient(server.address("http")) as web:
            assert (
                web.get("/admin/probe").headers["location"] == "/account/sign-in?next=/admin/probe"
            )
            web.sign_in(*ALICE)
            refused = web.get("/admin/probe")
            assert refused.status_code == 403 and "for administrators" in refused.text
            # a page that does not exist is not told apart from one that does
            assert web.get("/admin/no-such-page").status_code == 403
            assert web.post("/admin/probe", {}).status_code == 403  # not 405: nothing told
        with WebClient(server.address("http")) as web:
            assert web.sign_in(*ADMIN, next_page="/admin/probe").headers["location"] == (
                "/admin/probe"
            )
            assert web.get("/admin/probe").status_code == 200
            assert web.get("/admin/no-such-page").status_code == 404
            assert web.post("/admin/probe", {}).headers["allow"] == "GET, HEAD"
    finally:
        site.site.cache_clear()


def test_an_address_with_a_utf8_local_part_signs_in(server):
    server.add_account("jöran@example.test", "jöran's password")
    with WebClient(server.address("http")) as web:
        assert web.sign_in("Jöran@example.test", "jöran's password").status_code == 303
        assert "jöran@example.test" in web.get("/account/").text
