"""A generated mail corpus for the junk classifier: junk and non-junk messages with distinct
vocabularies, shared noise words, and some words of the other class in each (so that no
single word decides), from a fixed seed. Deterministic: the same seed gives the same bytes.

Non-junk reads like work and family mail from a few correspondents; junk like offers from
many throwaway domains. Both use the same common English words for most of their text, and
both come as plain text, HTML or multipart/alternative.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def _vocabulary(text: str) -> list[str]:
    return text.split()


NOISE = _vocabulary("""the of and to in is you that it he was for on are as with his they at be this
have from or one had by word but not what all were we when your can said there use an each
which she do how their if will up other about out many then them these so some her would
make like him into time has look two more write go see number no way could people my than
first water been call who oil its now find long down day did get come made may part over new
sound take only little work know place year live me back give most very after thing our just
name good sentence man think say great where help through much before line right too mean old
any same tell boy follow came want show also around form three small set put end does another
well large must big even such because turn here why ask went men read need land different home
us move try kind hand picture again change off play spell air away animal house point page
letter mother answer found study still learn should""")

HAM_WORDS = _vocabulary("""meeting agenda minutes quarterly budget review project milestone deadline
schedule colleague team sprint roadmap release deployment staging repository commit branch
merge pipeline incident postmortem oncall rotation standup retrospective backlog ticket
estimate invoice receipt reimbursement expense travel itinerary conference workshop
presentation slides draft feedback proposal contract signature approval manager director
hiring interview candidate onboarding laptop password reset calendar invite lunch dinner
birthday anniversary family weekend vacation photos kids school teacher homework soccer
practice recipe grandma cousin wedding reunion garden neighbour library museum concert
tickets hiking camping trail bicycle repair plumber landlord lease apartment utilities
insurance dentist appointment pharmacy prescription doctor checkup vaccine report thesis
chapter manuscript reviewer journal citation seminar lecture syllabus exam grading
spreadsheet database migration benchmark latency throughput regression patch changelog
documentation tutorial wiki handbook policy compliance audit vendor procurement shipment
warehouse inventory forecast revenue margin""")

SPAM_WORDS = _vocabulary("""winner prize lottery jackpot claim congratulations selected
exclusive offer
limited discount cheap bargain deal bonus cashback guaranteed risk free trial unsubscribe
viagra cialis pills pharmacy prescription weight loss diet supplement miracle cure enlarge
casino poker betting odds slots crypto bitcoin investment profit returns millionaire wealth
income earn home opportunity mlm referral commission urgent immediately verify account
suspended locked confirm banking credentials wire transfer inheritance beneficiary prince
barrister fund million dollars usd western union gift card voucher coupon promo clearance
sale luxury replica watches handbags designer loans credit score debt consolidation mortgage
refinance approved instant cash payday rolex singles dating hot lonely meet tonight click
here now act fast expires today order satisfaction unbelievable amazing secret revealed
doctors hate trick billionaire celebrity endorsed shocking viral stock alert penny explode
insider tip hurry""")

HAM_FROM = ["alice@example.org", "bob@work.example", "carol@family.example", "dave@uni.example"]
SPAM_DOMAINS = ["promo-deals.example", "win-big.example", "cheap-meds.example", "lux4less.example"]


@dataclass(frozen=True)
class Sample:
    junk: bool
    data: bytes
    subject: str


def _text(rng: random.Random, own: list[str], other: list[str], words: int) -> list[str]:
    out = []
    for _ in range(words):
        roll = rng.random()
        if roll < 0.25:
            out.append(rng.choice(own))
        elif roll < 0.28:  # a word of the other class now and then
            out.append(rng.choice(other))
        else:
            out.append(rng.choice(NOISE))
    return out


def message(
    rng: random.Random,
    junk: bool,
    index: int,
    *,
    auth: str | None = None,
    words: tuple[int, int] = (40, 120),
) -> Sample:
    """One message of ``words`` (bounds) body words. ``auth``: an Authentication-Results
    field (without CRLF) to include."""
    own, other = (SPAM_WORDS, HAM_WORDS) if junk else (HAM_WORDS, SPAM_WORDS)
    subject = " ".join(_text(rng, own, other, rng.randint(3, 7))).capitalize()
    body_words = _text(rng, own, other, rng.randint(*words))
    lines = [" ".join(body_words[i : i + 12]) for i in range(0, len(body_words), 12)]
    if junk:
        local = rng.choice(["offers", "info", "noreply", "support"])
        sender = f"{local}@{rng.choice(SPAM_DOMAINS)}"
    else:
        sender = rng.choice(HAM_FROM)
    head = [
        f"From: {sender}",
        "To: bob@example.test",
        f"Subject: {subject}",
        f"Message-ID: <{'j' if junk else 'h'}{index}.{rng.randrange(10**9)}@corpus.example>",
        "Date: Fri, 04 Dec 2026 12:00:00 +0000",
        "MIME-Version: 1.0",
    ]
    if auth is not None:
        head.insert(0, auth)
    kind = rng.choice(["plain", "html", "alternative"])
    text = "\r\n".join(lines)
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in lines) + "</body></html>"
    if kind == "plain":
        head.append("Content-Type: text/plain; charset=utf-8")
        body = text
    elif kind == "html":
        head.append("Content-Type: text/html; charset=utf-8")
        body = html
    else:
        head.append('Content-Type: multipart/alternative; boundary="alt"')
        body = (
            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--alt--"
        )
    data = ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()
    return Sample(junk, data, subject)


def corpus(
    count: int, *, seed: int = 1505, start: int = 0, words: tuple[int, int] = (40, 120)
) -> list[Sample]:
    """``count`` junk and ``count`` non-junk messages, interleaved (junk first)."""
    rng = random.Random(seed)
    out = []
    for index in range(start, start + count):
        out.append(message(rng, True, index, words=words))
        out.append(message(rng, False, index, words=words))
    return out
