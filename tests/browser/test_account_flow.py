"""A user's pages in Chromium, step by step as a person takes them, each step a screenshot
(artifacts/browser/<test>/): app passwords that open IMAP (imaplib) for the protocols chosen
and stop when revoked; the password changed on its page, the old one refused after.

The steps that need a page still to come (two-factor enrolment, the vacation reply, the raw
Sieve editor) are added here as those pages land."""

from __future__ import annotations

import imaplib

import pytest

from tests.browser.site import ALICE, base_url, sign_in, sign_out, start_site

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted"),
]
TIMEOUT = 20


@pytest.fixture
def server(start_server):
    return start_site(start_server)


def imap_login(server, user: str, password: str) -> str:
    """ "ok", or the text of the NO that answered LOGIN."""
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error as error:
            return str(error)
        client.logout()
        return "ok"


def test_an_app_password_made_on_the_page_opens_imap_until_revoked(server, browser):
    browser.base_url = base_url(server)
    sign_in(browser, ALICE)
    browser.click("nav a[href='/account/app-passwords']")
    assert "None yet." in browser.wait_text("App passwords")
    browser.shot("app passwords: none yet")

    # IMAP only: the other protocols unticked.
    for protocol in ("smtp", "pop3", "managesieve"):
        browser.find(f"#protocol-{protocol}").click()
    browser.submit(
        {"name": "phone"}, form="form[action='/account/app-passwords']", shot="phone, IMAP only"
    )
    password = browser.find("#new-password").text.strip()
    assert len(password) >= 16
    assert "imap" in browser.find("table").text and "smtp" not in browser.find("table").text
    browser.shot("the new app password, shown once")

    assert imap_login(server, ALICE[0], password) == "ok"
    assert imap_login(server, ALICE[0], password.upper().replace("-", " ")) == "ok"  # leniently
    browser.open("/account/app-passwords")
    assert password not in browser.text()  # never shown again
    browser.click("button[aria-label='Revoke phone']")
    browser.wait_text("The app password is revoked.")
    browser.shot("revoked")
    assert imap_login(server, ALICE[0], password) != "ok"
    assert browser.console_errors() == []


def test_the_password_changed_on_its_page_opens_imap_and_the_old_one_no_longer(server, browser):
    browser.base_url = base_url(server)
    sign_in(browser, ALICE)
    browser.click("nav a[href='/account/password']")
    browser.shot("password page")
    new = "a much longer new password"
    browser.submit(
        {"current": "not the password", "new": new, "confirm": new},
        form="main form",
    )
    browser.wait_text("current password")  # the error names what was wrong
    browser.shot("wrong current password")
    browser.submit({"current": ALICE[1], "new": new, "confirm": new}, shot="password change")
    browser.wait_text("Your password is changed.")
    browser.shot("password changed")
    assert imap_login(server, ALICE[0], new) == "ok"
    assert imap_login(server, ALICE[0], ALICE[1]) != "ok"
    sign_out(browser)
    sign_in(browser, (ALICE[0], new), shots=False)
    browser.shot("signed in with the new password")
    assert browser.console_errors() == []
