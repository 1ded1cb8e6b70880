"""Mail from strangers, end to end: the strict modes (each refusal code) and DNS block- and
allowlists (reject and junk), over SMTP from PROXY-posed outside addresses, against a DNS server
on loopback; where accepted mail landed is read over IMAP."""

from __future__ import annotations

import pytest

from stalwart_py.plugin import discover_protocols
from tests.support.inbound import (
    GOOD_IP,
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

STRICT = "".join(
    f'[auth.{method}]\nverify = "strict"\n' for method in ("spf", "dkim", "dmarc", "arc", "iprev")
)
LISTED = "198.51.100.99"  # in bl.test
ALLOWED = "198.51.100.98"  # in bl.test and in the allowlist wl.test
REFUSED_QUERY = "198.51.100.97"  # bl.test answers 127.255.255.254: "you may not ask"
ODD_ANSWER = "198.51.100.96"  # bl.test answers 10.0.0.1: outside 127/8
LISTED_V6 = "2001:db8::99"
DNSBL = """
[spam.dnsbl]
ip-zones = ["bl.test"]
domain-zones = ["dbl.test"]
allow-zones = ["wl.test"]
action = "{action}"
"""


@pytest.fixture(scope="module")
def outside():
    with world() as senders:
        zone = senders.zone
        nibbles = ".".join(reversed("20010db8000000000000000000000099"))
        for name, answer in [
            ("99.100.51.198.bl.test", "127.0.0.2"),
            ("98.100.51.198.bl.test", "127.0.0.2"),
            ("98.100.51.198.wl.test", "127.0.10.3"),
            ("97.100.51.198.bl.test", "127.255.255.254"),
            ("96.100.51.198.bl.test", "10.0.0.1"),
            (f"{nibbles}.bl.test", "127.0.0.4"),
            ("spammer.test.dbl.test", "127.0.1.2"),
            ("badfrom.test.dbl.test", "127.0.1.2"),
        ]:
            zone.add(name, "A", answer)
        zone.add("99.100.51.198.bl.test", "TXT", '"Listed: see https://bl.test/198.51.100.99"')
        for domain in ("spammer.test", "badfrom.test"):
            zone.add(domain, "TXT", '"v=spf1 ?all"')
        zone.servfail.add("_dmarc.dmarcdown.test")
        zone.add("dmarcdown.test", "TXT", f'"v=spf1 ip4:{GOOD_IP} -all"')
        yield senders


def start(outside, server_cert, tmp_path_factory, extra: str):
    path = write_config(
        tmp_path_factory.mktemp("inbound"),
        inbound_config(server_cert, extra=resolver_table(outside.zone) + extra),
    )
    server = InProcessServer(path, discover_protocols()).__enter__()
    server.add_account(USER, PASSWORD)
    return server


@pytest.fixture(scope="module")
def strict(outside, server_cert, tmp_path_factory):
    server = start(outside, server_cert, tmp_path_factory, STRICT)
    yield server
    server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def blocking(outside, server_cert, tmp_path_factory):
    server = start(outside, server_cert, tmp_path_factory, DNSBL.format(action="reject"))
    yield server
    server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def junking(outside, server_cert, tmp_path_factory):
    server = start(outside, server_cert, tmp_path_factory, DNSBL.format(action="junk"))
    yield server
    server.__exit__(None, None, None)


def transaction(server, ip: str, sender: str, data: bytes) -> list[tuple[int, bytes]]:
    """MAIL, RCPT and DATA (each only after the previous succeeded); every reply."""
    with ProxiedSMTP(ip, *server.address("mx")) as client:
        client.ehlo("mx.sender.test")
        replies = [client.mail(sender)]
        if replies[-1][0] == 250:
            replies.append(client.rcpt(USER))
        if replies[-1][0] == 250:
            replies.append(client.data(data))
        return replies


def landed(server, subject: str) -> list[tuple[str, bytes, bytes]]:
    return [
        (mailbox, flags, data)
        for mailbox in ("INBOX", "Junk")
        for flags, data in fetch_mailbox(server, mailbox)
        if f"Subject: {subject}\r\n".encode() in data
    ]


# -- strict -----------------------------------------------------------------------------------


def test_strict_spf_fail_is_refused_at_mail_from(strict):
    [(code, text)] = transaction(strict, STRANGER_IP, "a@pass.test", message("a@pass.test"))
    assert code == 550 and text.startswith(b"5.7.23 SPF check failed"), text


def test_strict_spf_temperror_is_451_at_mail_from(strict):
    [(code, text)] = transaction(strict, GOOD_IP, "a@temperror.test", b"")
    assert code == 451 and text.startswith(b"4.7.24 "), text


def test_strict_accepts_what_passes_and_softfail(strict, outside):
    data = outside.sign(message("a@sender.test", "strict ok"), "sender.test", "s1")
    assert transaction(strict, GOOD_IP, "a@sender.test", data)[-1][0] == 250
    data = message("a@softfail.test", "strict softfail")
    assert transaction(strict, GOOD_IP, "a@softfail.test", data)[-1][0] == 250  # not definite
    [(mailbox, _, stored)] = landed(strict, "strict softfail")
    assert mailbox == "INBOX" and "spf=softfail" in our_results(stored)[0]


def test_strict_dkim_without_a_passing_signature_is_550_5_7_20(strict, outside):
    data = outside.sign(message("a@nopolicy.test", "bad dkim"), "sender.test", "s1")
    data = data.replace(b"noon?", b"one?")
    code, text = transaction(strict, GOOD_IP, "a@nopolicy.test", data)[-1]
    assert code == 550 and text.startswith(b"5.7.20 "), text


def test_strict_dmarc_fail_is_refused_even_with_p_none(strict):
    data = message("a@nopolicy.test", "strict dmarc")
    code, text = transaction(strict, GOOD_IP, "x@pass.test", data)[-1]
    assert code == 550 and text.startswith(b"5.7.1 Rejected by the DMARC policy"), text


def test_strict_dmarc_temperror_is_451(strict):
    data = message("a@dmarcdown.test", "dmarc down")
    code, text = transaction(strict, GOOD_IP, "a@dmarcdown.test", data)[-1]
    assert code == 451 and text.startswith(b"4.7.1 "), text


def test_strict_iprev_fail_is_550_5_7_25(strict):
    data = message("a@none.test", "iprev strict")
    code, text = transaction(strict, STRANGER_IP, "a@none.test", data)[-1]
    assert code == 550 and text.startswith(b"5.7.25 "), text


# -- DNSBL and DNSWL --------------------------------------------------------------------------


@pytest.mark.single_worker(METRICS_OF_ONE_WORKER)
def test_a_listed_client_is_refused_after_rcpt_naming_the_list(blocking):
    replies = transaction(blocking, LISTED, "a@neutral.test", message("a@neutral.test"))
    assert replies[0][0] == 250
    code, text = replies[1]
    assert code == 554
    assert text == (
        b"5.7.1 Service unavailable; Client host [198.51.100.99] blocked using bl.test;"
        b" Listed: see https://bl.test/198.51.100.99"
    )
    assert metric(blocking, "stalwart_inbound_dnsbl_listings_total", zone="bl.test") >= 1


def test_a_listed_ipv6_client_is_refused(blocking):
    code, text = transaction(blocking, LISTED_V6, "a@neutral.test", b"")[-1]
    assert code == 554 and b"[2001:db8::99] blocked using bl.test" in text, text


def test_allowlisted_and_refused_queries_are_accepted(blocking):
    for ip, subject in [
        (ALLOWED, "allowed"),
        (REFUSED_QUERY, "query refused"),
        (ODD_ANSWER, "odd answer"),
    ]:
        data = message("a@neutral.test", subject)
        assert transaction(blocking, ip, "a@neutral.test", data)[-1][0] == 250, subject
        [(mailbox, _, _)] = landed(blocking, subject)
        assert mailbox == "INBOX"


def test_listed_sender_domains_are_refused_after_rcpt_and_from_domains_after_data(blocking):
    code, text = transaction(blocking, GOOD_IP, "a@spammer.test", b"")[-1]
    assert code == 554 and b"Domain spammer.test blocked using dbl.test" in text, text
    data = message("a@badfrom.test", "bad from")
    code, text = transaction(blocking, GOOD_IP, "x@neutral.test", data)[-1]
    assert code == 554 and b"Domain badfrom.test blocked using dbl.test" in text, text
    assert landed(blocking, "bad from") == []


def test_with_action_junk_listed_mail_goes_to_junk(junking):
    data = message("a@neutral.test", "junked")
    assert transaction(junking, LISTED, "a@neutral.test", data)[-1][0] == 250
    [(mailbox, flags, _)] = landed(junking, "junked")
    assert mailbox == "Junk" and b"$Junk" in flags
    data = message("a@badfrom.test", "junked from")
    assert transaction(junking, GOOD_IP, "x@neutral.test", data)[-1][0] == 250
    [(mailbox, flags, _)] = landed(junking, "junked from")
    assert mailbox == "Junk" and b"$Junk" in flags
