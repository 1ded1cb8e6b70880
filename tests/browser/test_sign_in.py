"""Signing in and out of the pages in Chromium: the form, a wrong password, the overview, the
header's sign-out, and the pages closed again after it."""

from __future__ import annotations

import pytest

from tests.browser.site import ALICE, base_url, sign_in, sign_out, start_site

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
