"""Signing in and out of the pages in Chromium: the form, a wrong password, the overview, the
header's sign-out, and the pages closed again after it."""

from __future__ import annotations

import pytest

from tests.browser.site import ALICE, base_url, sign_in, sign_out, start_site
from tests.support.browser import trust_certificate

pytestmark = pytest.mark.heavy


@pytest.fixture
def server(start_server):
    return start_site(start_server)


def test_sign_in_see_the_overview_and_sign_out(server, browser):
    browser.base_url = base_url(server)
    browser.open("/account/")
    assert browser.wait_path("/account/sign-in").startswith("/account/sign-in?next=/account/")
    browser.shot("sign-in form")

    browser.submit(
        {"address": ALICE[0], "password": "not the password"},
        form="form[action='/account/sign-in']",
    )
    assert "Wrong address or password." in browser.wait_text("Wrong address")
    assert browser.find("#address").get_attribute("value") == ALICE[0]  # kept for a retry
    browser.shot("wrong password")

    sign_in(browser, ALICE)
    text = browser.wait_text("Your account")
    assert ALICE[0] in text and "this browser" in text
    browser.shot("overview")
    # The stylesheet loaded (served by the server, allowed by the CSP): the header is styled.
    assert browser.find("header").value_of_css_property("display") != "inline"

    sign_out(browser)
    browser.shot("signed out")
    browser.open("/account/")
    browser.wait_path("/account/sign-in")
    assert browser.console_errors() == []  # no CSP violation, no script error, nothing missing


@pytest.fixture
def browser_arguments(server_cert):
    """Trust the test CA's certificate of the HTTPS listener (and nothing else)."""
    return (trust_certificate(server_cert[0].read_bytes()),)


def test_over_https_the_secure_host_cookie_keeps_the_session(start_server, server_cert, browser):
    """Over TLS the session cookie is ``__Host-`` and Secure: Chromium keeps it only if the
    prefix's rules hold (Secure, Path=/, no Domain), else every page would ask to sign in
    again. The browser reads no cookie through script (HttpOnly)."""
    cert, key = server_cert
    server = start_site(
        start_server,
        f"""
[server.listener.https]
bind = "127.0.0.1:0"
protocol = "http"
tls.implicit = true
tls.certificate = "{cert}"
tls.private-key = "{key}"
""",
    )
    browser.base_url = f"https://localhost:{server.address('https')[1]}"
    sign_in(browser, ALICE)
    browser.wait_text("Your account")
    browser.shot("signed in over https")
    cookies = {c["name"]: c for c in browser.driver.get_cookies()}
    session = cookies["__Host-stalwart-session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    assert browser.driver.execute_script("return document.cookie") == ""
    browser.click("nav a[href='/account/password']")
    browser.wait_path("/account/password")  # the cookie went with the next request
    browser.shot("the next page, still signed in")
    assert browser.console_errors() == []


def test_sign_out_everywhere_else_ends_the_other_sessions_only(server, browser):
    """Another device (an HTTP client) signed in as the same account is listed on the
    overview, and "Sign out everywhere else" ends its session, not this browser's."""
    from tests.support.web_raw import RawWebClient

    phone = RawWebClient(server.address("http")).signed_in(*ALICE)
    assert phone.get("/account/").status == 200
    browser.base_url = base_url(server)
    sign_in(browser, ALICE)
    rows = browser.find_all("main table tbody tr")
    assert len(rows) == 2 and sum("this browser" in row.text for row in rows) == 1
    browser.shot("two sessions")
    browser.click("form[action='/account/sessions/end-others'] button[type=submit]")
    browser.wait_text("Every other session is signed out.")
    assert len(browser.find_all("main table tbody tr")) == 1
    browser.shot("only this one left")
    answer = phone.get("/account/")
    assert answer.status == 303 and answer.location.startswith("/account/sign-in")
    browser.open("/account/")
    browser.wait_path("/account/")  # still signed in here
