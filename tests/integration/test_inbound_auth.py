"""Mail from strangers, end to end (issue 15), in the default relaxed mode: clients posing as
outside addresses (PROXY headers from a trusted proxy) send over SMTP to the MX listener; a
real DNS server on loopback publishes the senders' SPF, DKIM, DMARC, ARC and PTR records (the
server's [resolver] asks it, never the host's DNS); the Authentication-Results header, each
refusal, and where the message landed are read back over IMAP, as the user's client sees them.
"""

from __future__ import annotations

import smtplib

import pytest

from stalwart_py.plugin import discover_protocols
from tests.support.inbound import (
    GOOD_IP,
    LIST_IP,
    PASSWORD,
    STRANGER_IP,
    USER,
    fetch_mailbox,
    inbound_config,
    message,
    our_results,
    resolver_table,
    world,
)
from tests.support.proxied import ProxiedSMTP
from tests.support.servers import METRICS_OF_ONE_WORKER, InProcessServer, write_config
from tests.support.smtp import metric


@pytest.fixture(scope="module")
def outside():
    with world() as senders:
        yield senders


@pytest.fixture(scope="module")
def server(outside, server_cert, tmp_path_factory):
    extra = resolver_table(outside.zone) + '[auth.arc]\ntrusted-sealers = ["list.test"]\n'
    path = write_config(
        tmp_path_factory.mktemp("inbound"), inbound_config(server_cert, extra=extra)
    )
    with InProcessServer(path, discover_protocols()) as server:
        server.add_account(USER, PASSWORD)
        yield server


def send(server, data: bytes, *, sender: str, ip: str = GOOD_IP, helo: str = "mx.sender.test"):
    """Send ``data`` from ``ip``; the reply to the end of DATA (or the refusal)."""
    with ProxiedSMTP(ip, *server.address("mx")) as client:
        client.ehlo(helo)
        code, text = client.mail(sender)
        if code != 250:
            return code, text
        code, text = client.rcpt(USER)
        if code != 250:
            return code, text
        return client.data(data)


def delivered(server, subject: str, mailbox: str = "INBOX") -> tuple[bytes, bytes]:
    """(flags, message) of the message with ``subject`` in ``mailbox``; it must be there once."""
    found = [
        (flags, data)
        for flags, data in fetch_mailbox(server, mailbox)
        if f"Subject: {subject}\r\n".encode() in data
    ]
    assert len(found) == 1, (mailbox, subject, len(found))
    return found[0]


def results_of(server, subject: str, mailbox: str = "INBOX") -> str:
    _, data = delivered(server, subject, mailbox)
    [field] = our_results(data)
    return field


# -- SPF --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "ip", "expected"),
    [
        ("pass.test", GOOD_IP, "pass"),
        ("pass.test", STRANGER_IP, "fail"),
        ("softfail.test", GOOD_IP, "softfail"),
        ("neutral.test", GOOD_IP, "neutral"),
        ("none.test", GOOD_IP, "none"),
        ("permerror.test", GOOD_IP, "permerror"),
        ("temperror.test", GOOD_IP, "temperror"),
    ],
)
def test_spf_results_are_recorded_and_refuse_nothing_when_relaxed(server, domain, ip, expected):
    subject = f"spf {domain} {ip}"
    code, _ = send(server, message(f"a@{domain}", subject), sender=f"a@{domain}", ip=ip)
    assert code == 250
    field = results_of(server, subject)
    assert f"spf={expected} " in field and f"smtp.mailfrom=a@{domain}" in field, field
    assert "smtp.helo=mx.sender.test" in field, field
    _, data = delivered(server, subject)
    assert data.index(b"Received-SPF: " + expected.encode()) < data.index(b"\r\n\r\n")


# -- DKIM -------------------------------------------------------------------------------------


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_dkim_valid_rsa_and_ed25519_signatures_each_get_a_result(outside, server):
    data = outside.sign(
        outside.sign(message("a@sender.test", "two sigs"), "sender.test", "s1"), "sender.test", "s2"
    )
    assert send(server, data, sender="a@sender.test")[0] == 250
    field = results_of(server, "two sigs")
    assert "dkim=pass" in field and "header.d=sender.test header.s=s1" in field, field
    assert "header.s=s2 header.a=ed25519-sha256" in field, field
    assert field.count("dkim=pass") == 2, field
    assert metric(server, "stalwart_inbound_auth_results_total", method="dkim", result="pass") >= 2
    assert "dmarc=pass" in field and "header.from=sender.test" in field, field


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad body hash", "dkim=fail"),
        ("bad signature", "dkim=fail"),
        ("missing key", "dkim=permerror"),
        ("revoked key", "dkim=fail (key revoked"),
    ],
)
def test_dkim_failures_are_recorded(outside, server, case, expected):
    selector = {"missing key": "unpublished", "revoked key": "revoked"}.get(case, "s1")
    # MAIL FROM another domain (SPF pass, unaligned): DMARC rests on DKIM alone and fails,
    # so these go to a domain with p=none.
    signed = outside.sign(message("a@nopolicy.test", case), "sender.test", selector)
    if case == "bad body hash":
        signed = signed.replace(b"noon?", b"one?")
    if case == "bad signature":
        signed = signed.replace(b"To: Bob", b"To: Eve")  # a signed header changed
    assert send(server, signed, sender="a@pass.test")[0] == 250
    field = results_of(server, case)
    assert expected in field and "header.d=sender.test" in field, field


# -- DMARC ------------------------------------------------------------------------------------


def test_dmarc_aligned_by_spf_passes(server):
    assert send(server, message("a@sender.test", "aligned"), sender="bounce@sender.test")[0] == 250
    field = results_of(server, "aligned")
    assert "dmarc=pass" in field and "policy.dmarc=reject" in field, field


def test_dmarc_aligned_by_dkim_passes(outside, server):
    data = outside.sign(message("a@sender.test", "dkim aligned"), "sender.test", "s1")
    assert send(server, data, sender="x@pass.test")[0] == 250
    assert "dmarc=pass" in results_of(server, "dkim aligned")


def test_dmarc_unaligned_with_p_reject_is_refused_at_the_end_of_data(server):
    code, text = send(server, message("ceo@sender.test", "spoof"), sender="x@pass.test")
    assert code == 550
    assert text.startswith(b"5.7.1 Rejected by the DMARC policy of sender.test"), text
    assert not [m for _, m in fetch_mailbox(server, "INBOX") if b"Subject: spoof\r\n" in m]


def test_dmarc_p_quarantine_goes_to_junk_with_the_junk_keyword(server):
    code, _ = send(server, message("a@quarantine.test", "quarantined"), sender="x@pass.test")
    assert code == 250
    flags, data = delivered(server, "quarantined", "Junk")
    assert b"$Junk" in flags
    assert "dmarc=fail" in our_results(data)[0]


def test_dmarc_p_none_is_recorded_only(server):
    assert send(server, message("a@nopolicy.test", "p none"), sender="x@pass.test")[0] == 250
    field = results_of(server, "p none")
    assert "dmarc=fail" in field and "policy.dmarc=none" in field, field


def test_dmarc_sp_applies_to_subdomains(server):
    code, text = send(server, message("a@sub.parent.test", "subdomain"), sender="x@pass.test")
    assert (code, text[:5]) == (550, b"5.7.1"), text
    # Aligned (relaxed) through the organisational domain: passes.
    ok = send(server, message("a@sub.parent.test", "sub ok"), sender="x@parent.test")
    assert ok[0] == 250
    assert "dmarc=pass" in results_of(server, "sub ok")


def forwarded(outside, sealer: str, subject: str) -> bytes:
    """A message from sender.test (p=reject) that a mailing list at ``sealer`` received with
    a valid signature, changed (a footer breaks the body hash) and sealed with ARC."""
    original = outside.sign(message("alice@sender.test", subject), "sender.test", "s1")
    changed = original + b"--\r\nThe list footer\r\n"
    return outside.arc_seal(changed, sealer, "arc", "dkim=pass header.d=sender.test; dmarc=pass")


def test_a_forwarded_message_with_a_trusted_arc_chain_overrides_dmarc(outside, server):
    data = forwarded(outside, "list.test", "via the list")
    assert send(server, data, sender="bounce@list.test", ip=LIST_IP)[0] == 250
    field = results_of(server, "via the list")
    assert "arc=pass" in field and "dmarc=fail" in field and "list.test" in field, field


def test_an_untrusted_arc_sealer_does_not_override_dmarc(outside, server):
    data = forwarded(outside, "untrusted.test", "via another list")
    code, text = send(server, data, sender="bounce@untrusted.test", ip=LIST_IP)
    assert (code, text[:5]) == (550, b"5.7.1"), text


# -- the header itself ------------------------------------------------------------------------


def test_a_spoofed_authentication_results_is_removed(server):
    forged = (
        b"Authentication-Results: mail.example.test; dkim=pass header.d=bank.test;"
        b" dmarc=pass header.from=bank.test\r\n"
        b"Authentication-Results: MAIL.EXAMPLE.TEST 1; spf=pass\r\n"
    )
    data = forged + message("a@pass.test", "forged results")
    assert send(server, data, sender="a@pass.test")[0] == 250
    _, stored = delivered(server, "forged results")
    [field] = our_results(stored)
    assert "bank.test" not in stored.decode()
    assert "spf=pass" in field and "iprev=pass" in field, field


def test_iprev_fails_without_a_confirmed_name(server):
    assert (
        send(server, message("a@none.test", "no ptr"), sender="a@none.test", ip=STRANGER_IP)[0]
        == 250
    )
    field = results_of(server, "no ptr")
    assert "iprev=fail" in field and f"policy.iprev={STRANGER_IP}" in field, field


def test_submission_authenticated_and_lmtp_mail_is_not_checked(server):
    with ProxiedSMTP(STRANGER_IP, *server.address("submission")) as client:
        client.login(USER, PASSWORD)
        client.sendmail(USER, [USER], message(USER, "my own"))
    with smtplib.LMTP(*server.address("lmtp"), timeout=20) as client:
        client.sendmail("ceo@sender.test", [USER], message("ceo@sender.test", "over lmtp"))
    for subject in ("my own", "over lmtp"):
        _, data = delivered(server, subject)
        assert our_results(data) == [] and b"Received-SPF" not in data, subject


def test_no_checks_refuse_nothing_when_dns_is_down(server, outside):
    outside.zone.servfail.add("down.test")
    outside.zone.servfail.add("_dmarc.down.test")
    code, _ = send(server, message("a@down.test", "dns down"), sender="a@down.test")
    assert code == 250
    field = results_of(server, "dns down")
    assert "spf=temperror" in field and "dmarc=temperror" in field, field


def test_smtp_refusals_are_not_delivered_anywhere(server):
    with (
        pytest.raises(smtplib.SMTPDataError),
        ProxiedSMTP(GOOD_IP, *server.address("mx")) as client,
    ):
        client.sendmail("x@pass.test", [USER], message("ceo@sender.test", "refused"))
    for mailbox in ("INBOX", "Junk"):
        assert not [m for _, m in fetch_mailbox(server, mailbox) if b"Subject: refused" in m]


def test_a_bounce_is_checked_as_postmaster_at_the_helo_name(server):
    assert send(server, message("mailer-daemon@pass.test", "bounce"), sender="")[0] == 250
    field = results_of(server, "bounce")
    assert "spf=none" in field and "smtp.mailfrom=postmaster@mx.sender.test" in field, field
