"""The administrator's pages in Chromium, as an administrator sets up a new domain: the
dashboard, a domain added, an account in it (which then logs in over IMAP), an alias to it
(mail sent over SMTP to the alias lands in the account's INBOX), the IMAP listener disabled
(a new IMAP client refused) and enabled again, and a message the queue could not deliver
(remote.test's server on loopback said 451) retried from its page once the far side takes
it. Each step a screenshot."""

from __future__ import annotations

import imaplib
import smtplib
import time

import pytest

from tests.browser.site import (
    ADMIN,
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
CAROL = ("carol@newdomain.test", "carol's first password")
MESSAGE = "From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{n}@t>\r\n\r\nHi.\r\n"


@pytest.fixture
def world():
    with outside_world() as (zone, peer):
        yield zone, peer


@pytest.fixture
def server(start_server, world):
    return start_site(start_server, queue=outside_queue(*world))


def imap(server, user: str, password: str) -> str:
    """ "ok", or why a new IMAP client got no further."""
    host, port = server.address("imap")
    try:
        with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
            client.login(user, password)
            client.logout()
    except (imaplib.IMAP4.error, OSError) as error:
        return str(error) or type(error).__name__
    return "ok"


def inbox_subjects(server, user: str, password: str) -> list[str]:
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=TIMEOUT) as client:
        client.login(user, password)
        _, count = client.select("INBOX", readonly=True)
        subjects = []
        if int(count[0]):
            _, fetched = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects = [
                item[1].decode().partition(":")[2].strip()
                for item in fetched
                if isinstance(item, tuple)
            ]
        client.logout()
    return subjects


def send(server, sender: str, to: str, subject: str, n: int) -> None:
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        data = MESSAGE.format(sender=sender, to=to, subject=subject, n=n).encode()
        client.sendmail(sender, [to], data)


def admin_nav(browser, href: str) -> None:
    browser.click(f"nav.admin-nav a[href='{href}']")


def test_an_administrator_sets_up_a_domain_and_runs_the_server(server, world, browser):
    _zone, peer = world
    browser.base_url = base_url(server)
    sign_in(browser, ADMIN, page="/admin/")
    assert "Ready" in browser.find("#health").text
    browser.shot("dashboard")

    # A domain.
    admin_nav(browser, "/admin/domains")
    browser.submit({"name": "NewDomain.test"}, form="#add-domain", shot="a domain typed")
    # Added (its name lower-cased), and on to its page: the DNS records to publish.
    text = browser.wait_text("The domain is added.")
    assert "10 mail.example.test." in text and "v=spf1 mx -all" in text
    browser.shot("domain added: its DNS records")
    admin_nav(browser, "/admin/domains")
    assert browser.find("#domains").text.count("newdomain.test") == 1

    # An account in it, which then opens IMAP.
    admin_nav(browser, "/admin/accounts")
    browser.submit(
        {"address": CAROL[0], "password": CAROL[1], "confirm": CAROL[1], "quota": ""},
        form="#add-account",
        shot="an account typed",
    )
    browser.wait_text("The account is created.")  # on its own page
    browser.shot("account added")
    admin_nav(browser, "/admin/accounts")
    assert CAROL[0] in browser.find("#accounts").text
    assert imap(server, *CAROL) == "ok"

    # An alias to it: mail to the alias arrives in carol's INBOX.
    admin_nav(browser, "/admin/aliases")
    browser.submit(
        {"address": "sales@newdomain.test", "targets": CAROL[0]},
        form="#add-alias",
        shot="an alias typed",
    )
    browser.wait_text("sales@newdomain.test")
    assert CAROL[0] in browser.find("#aliases").text
    browser.shot("alias added")
    send(server, "buyer@remote.test", "sales@newdomain.test", "An order", 1)
    assert inbox_subjects(server, *CAROL) == ["An order"]

    # The IMAP listener disabled: a new client is refused; enabled: it logs in again.
    admin_nav(browser, "/admin/listeners")
    browser.shot("listeners")
    browser.click("#disable-imap")
    assert browser.find("#state-imap").text == "disabled"
    browser.shot("imap disabled")
    assert imap(server, *CAROL) != "ok"
    browser.click("#enable-imap")
    assert browser.find("#state-imap").text == "enabled"
    browser.shot("imap enabled again")
    assert imap(server, *CAROL) == "ok"

    # A message remote.test's server puts off (451) waits in the queue; once it would take
    # it, "Retry now" on the message's page sends it without waiting for the hour.
    peer.refuse["dave@remote.test"] = "451 4.3.0 try again later"
    send(server, CAROL[0], "dave@remote.test", "Quarterly numbers", 2)
    store = server.context.store
    deadline = time.monotonic() + TIMEOUT
    while True:
        entries = server.run(store.queue_entries)
        if entries and entries[0].recipients[0].attempts >= 1:
            break
        assert time.monotonic() < deadline, "the queue never tried"
        time.sleep(0.05)  # ok: the queue's first attempt has no signal the test can wait on
    [entry] = entries
    admin_nav(browser, "/admin/queue")
    assert "1 message waiting" in browser.find("#queue-size").text
    browser.shot("queue: one message waiting")
    browser.click(f"#queued-{entry.id}")
    assert "451" in browser.find("#recipients").text  # the last error, as the peer said it
    browser.shot("the queued message and its last error")
    peer.refuse.clear()
    browser.click("#retry")
    assert "1 recipient due now." in browser.find("#retried").text
    browser.shot("retried")
    [delivered] = peer.wait_for(1)
    assert delivered.rcpt_tos == ["dave@remote.test"]
    assert b"Subject: Quarterly numbers" in delivered.data
    admin_nav(browser, "/admin/queue")
    browser.wait(lambda _driver: "0 messages waiting" in browser.find("#queue-size").text)
    browser.shot("queue empty")
    assert browser.console_errors() == []
