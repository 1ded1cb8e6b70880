"""The OpenSPF test suite for RFC 7208 (tests/data/spf/rfc7208-tests.yml, release 2014.04, with
its licence beside it), every case, through the one resolver against a loopback DNS server.

Each scenario's zone data is served by a ``ZoneServer`` the way the suite's own driver
(pyspf's testspf.py) serves it: an ``SPF`` (type 99) record also appears as a TXT record unless
the name has a TXT entry of its own (``TXT: NONE`` being one that publishes nothing), and
``TIMEOUT`` makes every query of the name go unanswered except for the types listed before it.
A case passes when the MAIL FROM result is one of those the suite allows and, where the case
gives one, the explanation is the same (the suite's default explanation is "DEFAULT").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stalwart_py.inbound.spf import verify_spf
from stalwart_py.resolver import Resolver
from tests.support.mail_peers import ZoneServer

pytestmark = pytest.mark.anyio

SUITE = Path(__file__).resolve().parents[1] / "data" / "spf" / "rfc7208-tests.yml"
SCENARIOS: list[dict[str, Any]] = list(yaml.safe_load_all(SUITE.read_text(encoding="utf-8")))
CASES = [(index, name) for index, scenario in enumerate(SCENARIOS) for name in scenario["tests"]]
TYPES = ("A", "AAAA", "MX", "PTR", "TXT", "SPF", "CNAME")


def test_the_whole_suite_is_here():
    assert len(SCENARIOS) == 16
    assert len(CASES) == 203


def zone_text(rdtype: str, value: Any) -> str | None:
    """The zone-file text of one record of the suite (None: not representable)."""
    if rdtype in ("TXT", "SPF"):
        strings = [value] if isinstance(value, str) else list(value)
        if not strings:
            return None  # a TXT record of no strings ("null-text"), which DNS cannot carry
        return " ".join(_quoted(s) for s in strings)
    if rdtype == "MX":
        preference, host = value
        return f"{preference} {_absolute(host)}"
    if rdtype in ("PTR", "CNAME"):
        return _absolute(value)
    return str(value)


def _absolute(host: str) -> str:
    return host if host.endswith(".") else host + "."


def _quoted(text: str) -> str:
    """A character-string, every octet outside printable ASCII (and " and \\) as \\DDD."""
    return (
        '"'
        + "".join(
            chr(octet) if 0x20 <= octet < 0x7F and octet not in (0x22, 0x5C) else f"\\{octet:03d}"
            for octet in text.encode("utf-8")
        )
        + '"'
    )


def load_zone(zone: ZoneServer, zonedata: dict[str, list[Any]]) -> None:
    for owner, entries in zonedata.items():
        name = owner.lower().rstrip(".")
        zone.records.setdefault(name, [])  # a name with only TIMEOUT or NONE exists
        own_txt = any(isinstance(entry, dict) and "TXT" in entry for entry in entries)
        answered: set[str] = set()
        timed_out = False
        for entry in entries:
            if entry == "TIMEOUT":
                timed_out = True
                break
            ((rdtype, value),) = entry.items()
            if value == "NONE":
                continue
            text = zone_text(rdtype, value)
            if text is None:
                continue
            zone.add(name, rdtype, text)
            answered.add(rdtype)
            if rdtype == "SPF" and not own_txt:
                zone.add(name, "TXT", text)
                answered.add("TXT")
        if timed_out:
            zone.timeout_types.update((name, t) for t in TYPES if t not in answered)


@pytest.mark.parametrize(("scenario", "name"), CASES, ids=[name for _, name in CASES])
async def test_openspf(scenario: int, name: str) -> None:
    case = SCENARIOS[scenario]["tests"][name]
    zone = ZoneServer()
    load_zone(zone, SCENARIOS[scenario]["zonedata"])
    await zone.start()
    try:
        resolver = Resolver([("127.0.0.1", zone.port)], timeout=0.3, attempts=1)
        mail_from, _helo = await verify_spf(
            resolver,
            case["host"],
            case["mailfrom"],
            case["helo"],
            "receiver.test",
            default_explanation="DEFAULT",
        )
    finally:
        zone.close()
    expected = case["result"]
    allowed = expected if isinstance(expected, list) else [expected]
    assert mail_from.result in allowed, f"{case.get('spec')}: {mail_from.reason}"
    if "explanation" in case:
        assert mail_from.explanation == case["explanation"], mail_from.reason
