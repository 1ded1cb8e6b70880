"""The CAA suggestion of `dns records` (RFC 8659): one per known ACME CA, none for others."""

from __future__ import annotations

from pathlib import Path

import dns.zone

from stalwart_py import dns_records
from stalwart_py.config import parse_config

ACME = """
[acme."le"]
directory = "https://acme-v02.api.letsencrypt.org/directory"
domains = ["mail.example.test"]

[acme."le-staging"]
directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
domains = ["mail.example.test"]

[acme."google"]
directory = "https://dv.acme-v02.api.pki.goog/directory"
domains = ["mail.example.test"]

[acme."private"]
directory = "https://ca.internal.test:9000/acme/acme/directory"
domains = ["mail.example.test"]
"""


def records(text: str) -> list[dns_records.Record]:
    config = parse_config('[server]\nhostname = "mail.example.test"\n' + text, Path("c.toml"), {})
    return dns_records.records("example.test", config, [], [])


def test_caa_for_each_known_ca_once():
    found = records(ACME)
    caa = [r for r in found if r.rdtype == "CAA"]
    assert [(r.name, r.value) for r in caa] == [
        ("example.test", '0 issue "letsencrypt.org"'),
        ("example.test", '0 issue "pki.goog"'),
    ]
    zone = dns.zone.from_text(
        dns_records.zone_text("example.test", found),
        origin="example.test.",
        relativize=False,
        check_origin=False,
    )
    rdataset = zone.get_rdataset("example.test.", "CAA")
    assert sorted(r.to_text() for r in rdataset) == [
        '0 issue "letsencrypt.org"',
        '0 issue "pki.goog"',
    ]


def test_no_caa_without_acme_or_for_an_unknown_ca():
    assert not [r for r in records("") if r.rdtype == "CAA"]
    private = ACME.split('[acme."private"]')[1]
    assert not [r for r in records('[acme."private"]' + private) if r.rdtype == "CAA"]
