"""``stalwart-py dns records|check`` and ``GET /api/dns/{domain}`` against the loopback DNS
server: the printed records parse as a zone file; a zone holding exactly them checks ok; a
zone missing the DKIM key, or with a wrong SPF record, is reported as such (both shown)."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.zone
import pytest

from protocols.http import Http
from tests.support.http import ADMIN, ApiClient, Referee, start_http
from tests.support.mail_peers import ZoneServer, background_loop
from tests.support.servers import stalwart_cli, write_config

DOMAIN = "example.test"
HOST = "mail.example.test"
REVERSE = "1.0.0.127.in-addr.arpa"


@pytest.fixture(scope="module")
def zone_server():
    with background_loop() as portal:
        server = ZoneServer()
        portal.call(server.start)
        yield server
        portal.call(server.close)


@pytest.fixture
def zone(zone_server):
    zone_server.records.clear()  # each test publishes its own zone
    return zone_server


def config_text(data_dir, zone: ZoneServer) -> str:
    return f"""
[server]
hostname = "{HOST}"

[storage]
data-dir = "{data_dir}"

[resolver]
nameservers = ["127.0.0.1:{zone.port}"]
timeout = "2s"

[server.listener.imap]
bind = ["*:143", "[::]:143"]
protocol = "imap"

[server.listener.imaps]
bind = "*:993"
protocol = "imap"
tls.implicit = true

[server.listener.mx]
bind = "*:25"
protocol = "smtp"

[server.listener.submission]
bind = "*:587"
protocol = "smtp"
smtp.auth.require = true
"""


def publish(zone: ZoneServer, text: str, *, skip: set[tuple[str, str]] = frozenset()) -> None:
    """Put what the zone text says into the zone server, as the administrator would."""
    parsed = dns.zone.from_text(text, origin=DOMAIN + ".", relativize=False, check_origin=False)
    for name, rdataset in parsed.iterate_rdatasets():
        key = name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(rdataset.rdtype)
        if (key, rdtype) in skip:
            continue
        for rdata in rdataset:
            zone.add(key, rdtype, rdata.to_text())
    zone.add(HOST, "A", "127.0.0.1")
    zone.add(REVERSE, "PTR", HOST + ".")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, zone_server):
    """A data directory with the domain and two DKIM keys (the commands take seconds each
    on a busy machine, so the module shares it), and what ``dns records`` printed."""
    tmp_path = tmp_path_factory.mktemp("dns")
    config = write_config(tmp_path, config_text(tmp_path / "data", zone_server))
    assert stalwart_cli(config, "domain", "add", DOMAIN).returncode == 0
    assert stalwart_cli(config, "dkim", "generate", DOMAIN, "--selector", "rsa1").returncode == 0
    made = stalwart_cli(config, "dkim", "generate", DOMAIN, "--algorithm", "ed25519")
    assert made.returncode == 0, made.stderr
    records = stalwart_cli(config, "dns", "records", DOMAIN)
    assert records.returncode == 0, records.stderr
    return config, records.stdout


def test_the_records_parse_as_a_zone_file_and_say_what_the_server_is(setup):
    _config, text = setup
    parsed = dns.zone.from_text(text, origin=DOMAIN + ".", relativize=False, check_origin=False)

    def texts(name: str, rdtype: str) -> list[str]:
        node = parsed.get_rdataset(dns.name.from_text(name, parsed.origin), rdtype)
        assert node is not None, (name, rdtype)
        return sorted(r.to_text() for r in node)

    assert texts("@", "MX") == [f"10 {HOST}."]
    assert texts("@", "TXT") == ['"v=spf1 mx -all"']
    assert texts("mail", "TXT") == ['"v=spf1 a -all"']
    [rsa] = texts("rsa1._domainkey", "TXT")
    assert rsa.startswith('"v=DKIM1; k=rsa; p=MII')  # split in strings of at most 255
    ed25519 = [n for n in parsed if n.to_text().startswith("ed")]
    assert len(ed25519) == 1
    assert texts("_dmarc", "TXT") == ['"v=DMARC1; p=reject; rua=mailto:postmaster@example.test"']
    [sts] = texts("_mta-sts", "TXT")
    assert sts.startswith('"v=STSv1; id=')
    assert texts("_smtp._tls", "TXT") == ['"v=TLSRPTv1; rua=mailto:postmaster@example.test"']
    assert texts("_imaps._tcp", "SRV") == [f"0 1 993 {HOST}."]
    assert texts("_imap._tcp", "SRV") == [f"0 1 143 {HOST}."]
    assert texts("_submission._tcp", "SRV") == [f"0 1 587 {HOST}."]
    assert texts("_submissions._tcp", "SRV") == ["0 0 0 ."]  # no implicit-TLS submission
    assert texts("_sieve._tcp", "SRV") == ["0 0 0 ."]
    for name in ("autoconfig", "autodiscover", "mta-sts"):
        assert texts(name, "CNAME") == [f"{HOST}."]


def test_a_correct_zone_checks_ok(setup, zone):
    config, text = setup
    publish(zone, text)
    checked = stalwart_cli(config, "dns", "check", DOMAIN)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[-1] == f"{DOMAIN}: all records are in place"
    assert len([line for line in lines if line.startswith("ok ")]) == 17  # 16 records and the PTR
    assert f"ok        PTR   127.0.0.1 -> {HOST}" in lines


def test_a_zone_without_dkim_is_reported(setup, zone):
    config, text = setup
    publish(zone, text, skip={(f"rsa1._domainkey.{DOMAIN}", "TXT")})
    checked = stalwart_cli(config, "dns", "check", DOMAIN)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    index = lines.index(f"missing   TXT   rsa1._domainkey.{DOMAIN}")
    assert lines[index + 1].startswith(
        f'          expected: rsa1._domainkey.{DOMAIN}. 3600 IN TXT "v=DKIM1; k=rsa; p='
    )
    assert lines[-1] == f"{DOMAIN}: some records need attention"
    assert sum(line.startswith("missing") for line in lines) == 1


def test_a_wrong_spf_record_is_shown_beside_the_right_one(setup, zone):
    config, text = setup
    publish(zone, text, skip={(DOMAIN, "TXT")})
    zone.add(DOMAIN, "TXT", '"google-site-verification=abc"')  # not an SPF record
    zone.add(DOMAIN, "TXT", '"v=spf1 ip4:192.0.2.1 -all"')
    checked = stalwart_cli(config, "dns", "check", DOMAIN)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    index = lines.index(f"different TXT   {DOMAIN}")
    assert lines[index + 1 : index + 3] == [
        f'          expected: {DOMAIN}. 3600 IN TXT "v=spf1 mx -all"',
        "          found:    v=spf1 ip4:192.0.2.1 -all",
    ]
    assert sum(line.startswith("different") for line in lines) == 1


def test_a_ptr_naming_another_host_is_different(setup, zone):
    config, text = setup
    publish(zone, text)
    zone.records[REVERSE] = [("PTR", "other.example.test.")]
    zone.add("other.example.test", "A", "127.0.0.1")
    checked = stalwart_cli(config, "dns", "check", DOMAIN)
    assert checked.returncode == 1
    assert "different PTR   127.0.0.1 -> other.example.test" in checked.stdout
    assert f"FCrDNS holds for other.example.test, not for {HOST}" in checked.stdout


def test_not_a_hosted_domain(setup):
    config, _text = setup
    refused = stalwart_cli(config, "dns", "records", "elsewhere.test")
    assert refused.returncode == 1
    assert "elsewhere.test is not a local domain" in refused.stderr


def test_the_api_gives_records_and_checks_with_the_bound_ports(start_server, zone):
    extra = f"""
[resolver]
nameservers = ["127.0.0.1:{zone.port}"]
timeout = "2s"

[server.listener.imaps]
bind = "127.0.0.1:0"
protocol = "imap"
tls.implicit = true
"""
    server = start_http(start_server, extra=extra)
    port = server.address("imaps")[1]
    referee = Referee(Http().app.document)
    with ApiClient(server.address("http"), auth=ADMIN, referee=referee) as admin:
        plain = admin.get(f"/api/dns/{DOMAIN}")
        assert plain.status == 200
        records = {(r["name"], r["type"]): r for r in plain.json["records"]}
        assert records[(f"_imaps._tcp.{DOMAIN}", "SRV")]["value"] == f"0 1 {port} {HOST}."
        assert "status" not in records[(DOMAIN, "MX")]
        publish(zone, plain.json["zone"], skip={(f"_dmarc.{DOMAIN}", "TXT")})
        checked = admin.get(f"/api/dns/{DOMAIN}?check=true")
        assert checked.status == 200
        statuses = {(r["name"], r["type"]): r["status"] for r in checked.json["records"]}
        assert statuses.pop((f"_dmarc.{DOMAIN}", "TXT")) == "missing"
        assert set(statuses.values()) == {"ok"}
        assert checked.json["ok"] is False
        assert checked.json["reverse"][0]["status"] == "ok"
        assert admin.get("/api/dns/elsewhere.test").status == 404
        assert admin.get(f"/api/dns/{DOMAIN}?check=maybe").status == 400
        assert admin.get(f"/api/dns/{DOMAIN}", auth=None).status == 401
