"""The junk filter end to end, as a user sees it: mail delivered over SMTP to a real server,
trained by an IMAP client's junk actions (MOVE/COPY into and out of Junk, STORE $Junk and
$NotJunk, with imaplib), the verdict read back over IMAP (which mailbox, which flags, the
X-Spam-Status field), and Sieve's spamtest/spamtestplus/virustest on it (over SMTP and LMTP).
"""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import textwrap

import pytest

from tests.support.junk_corpus import Sample, corpus
from tests.support.managesieve import (
    PASSWORD,
    TIMEOUT,
    activate,
    config,
    deliver,
    deliver_lmtp,
    mailbox_contents,
    sieve_server,
)

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted")
BOB = "bob@example.test"


@pytest.fixture
def server(start_server):
    return sieve_server(start_server)


def send_all(server, samples: list[Sample], to: str = BOB) -> None:
    """Deliver each sample over one SMTP session, as a stranger's MX would."""
    host, port = server.address("smtp")
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        client.ehlo("mx.remote.test")
        for sample in samples:
            client.sendmail("sender@remote.test", [to], sample.data)


def imap(server) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*server.address("imap"), timeout=TIMEOUT)
    client.login(BOB, PASSWORD)
    return client


def uids_by_message_id(client: imaplib.IMAP4) -> dict[str, bytes]:
    """Message-ID -> UID in the selected mailbox."""
    _, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = item[0].split(b"UID ")[1].split()[0]
            out[item[1].decode().split(":", 1)[1].strip()] = uid
    return out


def message_id(sample: Sample) -> str:
    return sample.data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()


def settle(server) -> None:
    """Until the junk filter has trained on everything the IMAP commands queued."""
    server.run(server.context.junk.settled)


def train(server, samples: list[Sample]) -> None:
    """Deliver ``samples`` to INBOX and train them the ways a mail client does: junk by MOVE
    into Junk (half), by STORE +FLAGS $Junk then COPY into Junk (a quarter) or STORE $Junk
    alone; not-junk by STORE $NotJunk (half), or by a MOVE into Junk the user takes back
    (MOVE out of Junk to INBOX: a retraining that must not count twice)."""
    send_all(server, samples)
    client = imap(server)
    client.select("INBOX")
    uids = uids_by_message_id(client)
    junk = [uids[message_id(s)] for s in samples if s.junk]
    ham = [uids[message_id(s)] for s in samples if not s.junk]
    half, quarter = len(junk) // 2, len(junk) * 3 // 4
    assert client.uid("MOVE", b",".join(junk[:half]), "Junk")[0] == "OK"
    assert client.uid("STORE", b",".join(junk[half:]), "+FLAGS", "($Junk)")[0] == "OK"
    assert client.uid("COPY", b",".join(junk[half:quarter]), "Junk")[0] == "OK"
    assert client.uid("STORE", b",".join(ham[::2]), "+FLAGS", "($NotJunk)")[0] == "OK"
    mistaken = ham[1::2]
    assert client.uid("MOVE", b",".join(mistaken), "Junk")[0] == "OK"
    settle(server)  # trained as junk first...
    client.select("Junk")
    back = uids_by_message_id(client)
    ids = {message_id(s) for s in samples if not s.junk}
    taken_back = [uid for mid, uid in back.items() if mid in ids]
    assert len(taken_back) == len(mistaken)
    assert client.uid("MOVE", b",".join(taken_back), "INBOX")[0] == "OK"
    client.logout()
    settle(server)


def trained_counts(server, address: str = BOB) -> tuple[int, int]:
    store = server.context.store

    async def counts():
        account = await store.get_account(address)
        found = await store.junk_counts(account.id, [])
        return found.ham, found.spam

    return server.run(counts)


def test_training_by_imap_moves_files_held_out_mail_with_95_percent_accuracy(server):
    train(server, corpus(50))
    assert trained_counts(server) == (50, 50)  # moved back and forth, counted once
    held_out = corpus(100, seed=4242, start=5000)
    send_all(server, held_out)
    boxes = mailbox_contents(server, BOB)
    placed = {}
    for name in ("INBOX", "Junk"):
        for flags, data in boxes[name]:
            mid = data.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
            placed[mid] = (name, flags, data)
    right = ham_in_junk = 0
    for sample in held_out:
        name, flags, data = placed[message_id(sample)]
        status = data.split(b"X-Spam-Status: ")[1].split(b"\r\n")[0].decode()
        in_junk = name == "Junk"
        assert in_junk == ("$Junk" in flags) == status.startswith("Yes, score=")
        right += in_junk == sample.junk
        ham_in_junk += in_junk and not sample.junk
    assert right / len(held_out) >= 0.95, right
    assert ham_in_junk <= len(held_out) // 2 // 100, ham_in_junk


def test_nothing_is_filed_before_ten_of_each_and_forged_verdicts_are_removed(server):
    samples = corpus(12)
    train(server, samples[:18])  # 9 junk, 9 not junk
    assert trained_counts(server) == (9, 9)
    forged = samples[19].data.replace(
        b"MIME-Version", b"X-Spam-Status: No, score=0.00\r\nX-Spam-Score: 0\r\nMIME-Version"
    )
    send_all(server, [Sample(True, forged, "")])
    inbox = mailbox_contents(server, BOB)["INBOX"]
    data = inbox[-1][1]
    assert b"X-Spam-Status: No, not enough training (junk=9 not-junk=9)\r\n" in data
    assert data.count(b"X-Spam-") == 1  # the forged fields are gone


def test_submitted_mail_is_not_scored(server):
    """Mail from an authenticated user is not checked: no verdict, nothing stripped."""
    host, port = server.address("smtp")
    data = b"From: bob@example.test\r\nSubject: note\r\nX-Spam-Flag: mine\r\n\r\nhello\r\n"
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
        client.starttls(context=ssl._create_unverified_context())  # the self-signed default
        client.login(BOB, PASSWORD)
        client.sendmail(BOB, [BOB], data)
    stored = mailbox_contents(server, BOB)["INBOX"][-1][1]
    assert b"X-Spam-Flag: mine" in stored and b"X-Spam-Status" not in stored


SPAMTEST = textwrap.dedent("""\
    require ["spamtestplus", "virustest", "relational", "comparator-i;ascii-numeric",
             "fileinto", "mailbox", "imap4flags", "variables"];
    if virustest :value "eq" :comparator "i;ascii-numeric" "0" { addflag "virus-untested"; }
    if spamtest :value "eq" :comparator "i;ascii-numeric" "0" {
        fileinto :create "Unclassified";
    } elsif spamtest :percent :value "ge" :comparator "i;ascii-numeric" "90" {
        if spamtest :matches "*" { addflag "spam-${1}"; }
        if spamtest :percent :matches "*" { addflag "percent-${1}"; }
        fileinto :create "Suspect";
    } elsif spamtest :value "le" :comparator "i;ascii-numeric" "3" {
        addflag "clean";
    }
    """).replace("\n", "\r\n")


def test_sieve_spamtest_on_the_verdict_over_smtp_and_lmtp(server):
    activate(server, SPAMTEST)
    # untrained: not tested (0), even when the sender claims a score
    forged = b"Subject: x\r\nX-Spam-Status: Yes, score=1.00\r\n\r\nwin\r\n"
    assert deliver(server, forged, BOB)[0].code == 250
    assert deliver_lmtp(server, forged, BOB)[0].code == 250
    boxes = mailbox_contents(server, BOB)
    assert [sorted(flags) for flags, _ in boxes["Unclassified"]] == [["virus-untested"]] * 2
    activate(server, "keep;\r\n", name="plain")  # training mail stays in INBOX
    train(server, corpus(20))
    activate(server, SPAMTEST)
    junk, ham = corpus(1, seed=7, start=900)
    send_all(server, [junk])
    deliver_lmtp(server, ham.data, BOB)
    boxes = mailbox_contents(server, BOB)
    ((flags, data),) = boxes["Suspect"]  # the script filed it: not moved to Junk
    assert {"spam-10", "virus-untested"} <= flags, flags
    percent = data.split(b"X-Spam-Score: 0.")[1][:2].decode() if b"Score: 0." in data else "100"
    assert f"percent-{int(percent)}" in flags
    assert "$Junk" not in flags
    clean = [f for f, d in boxes["INBOX"] if message_id(ham).encode() in d]
    assert clean and "clean" in clean[0], boxes["INBOX"]


def test_a_junk_verdict_kept_by_sieve_goes_to_junk(server):
    activate(server, 'require "imap4flags";\r\naddflag "seen-by-sieve";\r\n')
    train(server, corpus(15))
    junk, _ham = corpus(1, seed=11, start=700)
    send_all(server, [junk])
    ((flags, data),) = [
        (f, d) for f, d in mailbox_contents(server, BOB)["Junk"] if message_id(junk).encode() in d
    ]
    assert {"$Junk", "seen-by-sieve"} <= flags
    assert b"X-Spam-Status: Yes, score=" in data


def test_a_disabled_classifier_neither_scores_nor_trains(start_server):
    server = start_server(
        config(extra="managesieve.auth.require-tls = false\n")
        + "\n[spam.classifier]\nenable = false\n"
    )
    server.add_account(BOB, PASSWORD)
    samples = corpus(1)
    send_all(server, samples)
    client = imap(server)
    client.select("INBOX")
    assert client.uid("MOVE", b"1", "Junk")[0] == "OK"
    assert client.uid("STORE", b"2", "+FLAGS", "($NotJunk)")[0] == "OK"
    client.logout()
    settle(server)
    assert trained_counts(server) == (0, 0)
    boxes = mailbox_contents(server, BOB)
    assert all(b"X-Spam-Status" not in data for _, data in boxes["INBOX"] + boxes["Junk"])
