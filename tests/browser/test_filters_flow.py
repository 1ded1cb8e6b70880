"""Mail filters in Chromium: a vacation reply set on the filters page answers a message that
arrives over SMTP (smtplib), and the answer really leaves: the queue delivers it to
remote.test's receiving server on loopback. Then the Sieve script itself, edited by hand: a
mistake is shown with its line and column, the text kept for fixing, and the fixed script
files the next message where it says (read back over IMAP)."""

from __future__ import annotations

import email
import email.policy
import imaplib
import smtplib

import pytest

from tests.browser.site import (
    ALICE,
    base_url,
    outside_queue,
    outside_world,
    sign_in,
    start_site,
)

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted"),
]
TIMEOUT = 20
MESSAGE = (
    "From: Carl <carl@remote.test>\r\nTo: Alice <alice@example.test>\r\n"
    "Subject: {subject}\r\nMessage-ID: <{n}@remote.test>\r\n\r\nHello Alice.\r\n"
)
BROKEN = (
    'require ["fileinto", "mailbox"];\n'
    "\n"
    'if header :contains "subject" "report" {\n'
    '  fileinto :create "Reports";\n'
    "  bogus_command;\n"
    "}\n"
)


@pytest.fixture
def world():
    with outside_world() as (zone, peer):
        yield zone, peer


@pytest.fixture
def server(start_server, world):
    return start_site(start_server, queue=outside_queue(*world))


def send(server, subject: str, n: int) -> None:
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        message = MESSAGE.format(subject=subject, n=n).encode()
        client.sendmail("carl@remote.test", [ALICE[0]], message)


def folders(server) -> dict[str, list[str]]:
    """Alice's non-empty mailboxes -> the subjects in them, over IMAP."""
    host, port = server.address("imap")
    out: dict[str, list[str]] = {}
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        client.login(*ALICE)
        _, listing = client.list()
        for line in listing:
            name = line.decode().rpartition(' "/" ')[2].strip('"')
            _, count = client.select(f'"{name}"', readonly=True)
            if int(count[0]):
                _, fetched = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                out[name] = [
                    item[1].decode().partition(":")[2].strip()
                    for item in fetched
                    if isinstance(item, tuple)
                ]
        client.logout()
    return out


def test_a_vacation_reply_set_on_the_page_answers_mail_and_the_raw_script(server, world, browser):
    _zone, peer = world
    browser.base_url = base_url(server)
    sign_in(browser, ALICE)
    browser.click("nav a[href='/account/filters']")
    browser.shot("filters")

    browser.find("#vacation").click()
    browser.submit(
        {"subject": "Away until Monday", "body": "I am away.\nBack on Monday."},
        form="form[action='/account/filters']",
        shot="vacation reply filled in",
    )
    browser.wait_text("Your filters are saved")
    assert browser.find("#vacation").is_selected()  # the form shows what is saved
    browser.shot("saved")

    send(server, "Lunch?", 1)
    [reply] = peer.wait_for(1)  # delivered by the queue to remote.test's server
    assert reply.mail_from in ("", "<>") and reply.rcpt_tos == ["carl@remote.test"]
    answer = email.message_from_bytes(reply.data, policy=email.policy.default)
    assert answer["Subject"] == "Away until Monday"
    assert answer["From"] == ALICE[0] and answer["In-Reply-To"] == "<1@remote.test>"
    assert answer["Auto-Submitted"].startswith("auto-replied")
    assert "Back on Monday." in answer.get_content()
    assert folders(server) == {"INBOX": ["Lunch?"]}  # vacation keeps the message

    # The script itself: the page's vacation is in it; a mistake is shown where it is.
    browser.click("a[href='/account/filters/script']")
    assert "vacation" in browser.find("#script").get_attribute("value")
    browser.shot("the generated script")
    browser.submit({"script": BROKEN}, form="form[action='/account/filters/script']")
    error = browser.wait_text("Line 5, column 3")
    assert 'Line 5, column 3: unknown command "bogus_command"' in error
    assert browser.find("#script").get_attribute("aria-invalid") == "true"
    kept = browser.find("#script").get_attribute("value").replace("\r\n", "\n")
    assert kept == BROKEN  # kept for fixing, not lost
    browser.shot("a mistake at line 5, column 3")

    fixed = BROKEN.replace("  bogus_command;\n", "")
    browser.submit({"script": fixed}, form="form[action='/account/filters/script']")
    browser.wait_text("The script is saved and active.")
    browser.shot("fixed and saved")
    send(server, "Monthly report", 2)
    assert folders(server) == {"INBOX": ["Lunch?"], "Reports": ["Monthly report"]}
    assert len(peer.received) == 1  # no vacation any more
    assert browser.console_errors() == []
