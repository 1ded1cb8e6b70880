"""Two-factor sign-in in Chromium, as a person turns it on: the key shown on the page goes
into an authenticator (pyotp, apart from the server's stalwart_py/totp.py), its code turns it
on, the recovery codes are shown once; then signing in wants a code, a recovery code opens
the account once, and mail clients need an app password: IMAP (imaplib) takes the one made on
the page and refuses the account's own password, saying why.

The server's two-factor clock is the test's (``TwoFactor.clock``): each sign-in moves it one
30-second step on, so a code is never a replay of the last and no test waits for the next."""

from __future__ import annotations

import imaplib
import time

import pyotp
import pytest

from tests.browser.site import ALICE, base_url, sign_in, sign_out, start_site
from tests.support.png import png_gray

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted"),
    pytest.mark.single_worker("the two-factor clock of the in-process worker is the test's"),
]
TIMEOUT = 20


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()) // 30 * 30 + 5)  # inside a step, not at its edge

    def __call__(self) -> float:
        return self.now

    def step(self) -> float:
        self.now += 30
        return self.now


@pytest.fixture
def server(start_server):
    return start_site(start_server)


@pytest.fixture
def clock(server) -> Clock:
    clock = Clock()
    server.context.directory.two_factor.clock = clock
    return clock


def scan_qr(browser, css: str) -> str:
    """The text of the QR code the element ``css`` shows, read from the window's screenshot
    (cut to the element) by zxing-cpp, the decoder phone apps are built on."""
    import zxingcpp

    width, height, gray = png_gray(browser.driver.get_screenshot_as_png())
    rect = browser.find(css).rect  # CSS pixels; the window's device pixel ratio is 1
    left, top = max(0, int(rect["x"]) - 8), max(0, int(rect["y"]) - 8)
    right = min(width, int(rect["x"] + rect["width"]) + 8)
    bottom = min(height, int(rect["y"] + rect["height"]) + 8)
    cut = b"".join(gray[y * width + left : y * width + right] for y in range(top, bottom))
    found = zxingcpp.read_barcodes(memoryview(cut).cast("B", (bottom - top, right - left)))
    assert len(found) == 1, f"{len(found)} QR codes could be read where the page shows one"
    return found[0].text


def imap_login(server, user: str, password: str) -> str:
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error as error:
            return str(error)
        client.logout()
        return "ok"


def test_turn_on_two_factor_sign_in_with_codes_and_use_an_app_password(server, clock, browser):
    browser.base_url = base_url(server)
    sign_in(browser, ALICE)
    browser.click("nav a[href='/account/two-factor']")
    browser.wait_text("Two-factor sign-in is off")
    browser.shot("two-factor off")

    browser.click("form[action='/account/two-factor'] button[type=submit]")
    secret = browser.find("#secret").text.strip().replace(" ", "")
    browser.shot("the key and its QR code")
    # The QR code as the browser shows it (inline SVG), scanned as a phone would: it must
    # carry the key shown beside it.
    uri = scan_qr(browser, ".qr")
    assert uri.startswith(f"otpauth://totp/mail.example.test:{ALICE[0]}?"), uri
    assert f"secret={secret}" in uri
    totp = pyotp.TOTP(secret)

    browser.submit({"code": "000000" if totp.at(clock.now) != "000000" else "111111"})
    browser.wait_text("code")  # refused, still pending: the key is still shown
    assert browser.find("#secret").text.strip().replace(" ", "") == secret
    browser.shot("a wrong code")
    browser.submit({"code": totp.at(clock.now)}, shot="the app's code typed")
    browser.wait_text("your recovery codes")
    recovery = [item.text.strip() for item in browser.find_all("#recovery-codes li")]
    assert len(recovery) == len(set(recovery)) >= 8
    browser.shot("on: the recovery codes, shown once")

    # Signing in now wants the code; the one of the next step opens the pages.
    sign_out(browser)
    sign_in(browser, ALICE, totp=totp, at=clock.step())
    browser.wait_text("Your account")
    assert "Two-factor sign-in\non" in browser.text() or "on (change)" in browser.text()
    browser.shot("signed in with a code")

    # A code already used is refused; a recovery code opens the account, once.
    sign_out(browser)
    browser.open("/account/")
    browser.submit(
        {"address": ALICE[0], "password": ALICE[1]}, form="form[action='/account/sign-in']"
    )
    browser.wait_path("/account/sign-in/code")
    browser.submit({"code": totp.at(clock.now)})  # the step just used
    browser.wait_text("not right")
    browser.shot("a used code refused")
    browser.submit({"code": recovery[0]}, shot="a recovery code typed")
    browser.wait_path("/account/")
    browser.shot("signed in with a recovery code")

    # Mail clients: the own password is refused, with the reason; an app password opens IMAP.
    refused = imap_login(server, ALICE[0], ALICE[1])
    assert "two-factor sign-in is enabled for this account: use an app password" in refused
    browser.click("nav a[href='/account/app-passwords']")
    browser.submit({"name": "laptop"}, form="form[action='/account/app-passwords']")
    password = browser.find("#new-password").text.strip()
    browser.shot("an app password for the laptop")
    assert imap_login(server, ALICE[0], password) == "ok"
    assert browser.console_errors() == []
