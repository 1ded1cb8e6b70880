"""``[auth]`` and ``[spam]``: how mail from strangers is checked (issue 15), with Stalwart's key
names. Every default works without configuration: all checks on in ``relaxed`` mode (check and
record in ``Authentication-Results``), no DNS blocklist until one is named.

Checked mail is mail arriving on an ``smtp`` listener that is not submission
(``smtp.auth.require = false``), from a client that did not authenticate and is not in
``relay-hosts``. Submission, authenticated senders, relay hosts and LMTP are not checked.

Each ``auth.<method>.verify`` is one of:

* ``"relaxed"`` (default): check, record the result in ``Authentication-Results``; refuse
  nothing (a DMARC failure still follows the sender domain's published policy).
* ``"strict"``: also refuse a definite failure (SPF ``fail`` at MAIL FROM: ``550 5.7.23``;
  DKIM signatures present and none passing: ``550 5.7.20``; ARC chain ``fail``: ``550
  5.7.29``; iprev ``fail``: ``550 5.7.25``). A DNS failure is refused only for SPF (``451
  4.7.24`` at MAIL FROM) and DMARC (``451 4.7.1`` at the end of DATA).
* ``"disable"``: not checked, not recorded. ``auth.dmarc.verify = "disable"`` is the one way to
  stop following the senders' DMARC policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stalwart_py.config.junk import ClassifierSettings
from stalwart_py.config.types import Hostname

VerifyMode = Literal["relaxed", "strict", "disable"]


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """``auth.<method>.*``: one authentication method."""

    # "relaxed": check and record in Authentication-Results; "strict": also refuse a
    # definite failure; "disable": neither (what each refuses: under [auth] above).
    verify: VerifyMode = "relaxed"


@dataclass(frozen=True, slots=True)
class ArcVerifySettings:
    """``auth.arc.*``: ARC (RFC 8617). A valid chain whose latest sealer (the ARC-Seal with the
    highest instance: the host that handed the message to us) is in ``trusted-sealers``
    overrides a DMARC failure: a mailing list we trust forwarded the message and said it
    passed when it arrived there."""

    # "relaxed": check and record the chain; "strict": also refuse a chain that fails;
    # "disable": neither.
    verify: VerifyMode = "relaxed"
    # Domains (the d= of an ARC-Seal) whose seal, when it is the latest of a valid chain,
    # overrides a DMARC failure; empty: none does.
    trusted_sealers: tuple[Hostname, ...] = field(default=(), metadata={"one_or_many": True})


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``[auth]``: sender authentication of checked mail (see the module docstring)."""

    spf: VerifySettings = field(default_factory=VerifySettings)
    dkim: VerifySettings = field(default_factory=VerifySettings)
    dmarc: VerifySettings = field(default_factory=VerifySettings)
    arc: ArcVerifySettings = field(default_factory=ArcVerifySettings)
    iprev: VerifySettings = field(default_factory=VerifySettings)


@dataclass(frozen=True, slots=True)
class DnsblSettings:
    """``[spam.dnsbl]``: DNS blocklists (RFC 5782) and allowlists.

    ``ip-zones`` are asked about the client's address (``2.0.0.192.zen.spamhaus.org``; an IPv6
    address in reversed nibbles), ``domain-zones`` about the envelope sender's domain (after
    RCPT) and the From domain (at the end of DATA). A client listed in an ``allow-zones``
    (DNSWL) zone is not looked up in the blocklists. Only answers in 127.0.0.0/8 count;
    127.255.255.252-255 (Spamhaus's "typo in the zone name", "query through a public
    resolver", "too many queries") are logged and ignored. ``action``: ``"reject"`` answers
    ``554 5.7.1`` naming the list (after RCPT, as Postfix's ``reject_rbl_client``; for the From
    domain at the end of DATA); ``"junk"`` accepts and files the message into Junk.
    """

    ip_zones: tuple[Hostname, ...] = ()  # blocklists asked about the client's IP address
    # Blocklists asked about the envelope sender's domain and the From domain.
    domain_zones: tuple[Hostname, ...] = ()
    # Allowlists (DNSWL) asked about the client's address: a listed client skips the others.
    allow_zones: tuple[Hostname, ...] = ()
    # What a listing does: "reject" answers 554 5.7.1 naming the list; "junk" files into Junk.
    action: Literal["reject", "junk"] = "reject"


@dataclass(frozen=True, slots=True)
class SpamSettings:
    """``[spam]``: what is done about unwanted mail."""

    dnsbl: DnsblSettings = field(default_factory=DnsblSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)  # config/junk.py
