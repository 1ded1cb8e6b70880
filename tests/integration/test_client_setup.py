"""Clients that configure themselves, over a real server's HTTP listener: Thunderbird
autoconfig, Outlook Autodiscover (POX), Apple profiles and the MTA-STS policy, each checked
against the listeners the server really bound (ephemeral ports), for hosted domains only."""

from __future__ import annotations

import plistlib
import socket
import xml.etree.ElementTree as ET

import pytest

from tests.support.http import ApiClient, http_listener, raw_response, start_http

LISTENERS = """
[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"

[server.listener.imaps]
bind = "127.0.0.1:0"
protocol = "imap"
tls.implicit = true

[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true

[server.listener.submissions]
bind = "127.0.0.1:0"
protocol = "smtp"
tls.implicit = true
smtp.auth.require = true

[mta-sts]
mode = "enforce"
max-age = "30d"
mx = ["mail.example.test", "backup.example.test"]
"""
HOST = "mail.example.test"
DOMAIN = "example.test"  # hosted: start_http creates accounts in it
AUTODISCOVER_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice@example.test</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""
RESPONSE_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture
def setup(start_server):
    server = start_http(start_server, extra=LISTENERS)
    ports = {lid: server.address(lid)[1] for lid in ("imap", "imaps", "submission", "submissions")}
    with ApiClient(server.address("http")) as client:
        yield server, client, ports


def get(client: ApiClient, path: str, host: str):
    return client.request("GET", path, auth=None, headers={"Host": host})


# -- Thunderbird ----------------------------------------------------------------------------

SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTHENTICATIONS = {
    "password-cleartext",
    "password-encrypted",
    "NTLM",
    "GSSAPI",
    "client-IP-address",
    "TLS-client-cert",
    "OAuth2",
    "none",
}


def validate_clientconfig(body: bytes) -> list[dict[str, str]]:
    """The structure Thunderbird documents for config-v1.1.xml (its ISPDB format): a
    clientConfig of version 1.1 with one emailProvider, whose children are domain(s),
    displayName, displayShortName, then incomingServer(s), then outgoingServer(s); each
    server has hostname, port, socketType, authentication and username. The servers, in
    order, as dicts."""
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    [provider] = list(root)
    assert provider.tag == "emailProvider" and provider.get("id")
    tags = [child.tag for child in provider]
    domains = [c.text for c in provider if c.tag == "domain"]
    assert domains and tags[: len(domains)] == ["domain"] * len(domains)
    rest = tags[len(domains) :]
    assert rest[:2] == ["displayName", "displayShortName"]
    servers = rest[2:]
    incoming = servers.count("incomingServer")
    assert incoming >= 1 and servers[:incoming] == ["incomingServer"] * incoming
    assert servers[incoming:] == ["outgoingServer"] * (len(servers) - incoming)
    assert len(servers) > incoming
    found = []
    for element in provider:
        if element.tag not in ("incomingServer", "outgoingServer"):
            continue
        fields = {child.tag: child.text or "" for child in element}
        assert set(fields) == {"hostname", "port", "socketType", "authentication", "username"}
        assert fields["socketType"] in SOCKET_TYPES
        assert fields["authentication"] in AUTHENTICATIONS
        assert 0 < int(fields["port"]) < 65536
        kind = element.get("type")
        assert kind in (("imap", "pop3") if element.tag == "incomingServer" else ("smtp",))
        found.append({"type": kind, **fields})
    return found


def test_thunderbird_autoconfig_matches_the_listeners(setup):
    _server, client, ports = setup
    answer = get(
        client, "/mail/config-v1.1.xml?emailaddress=alice%40example.test", "autoconfig.example.test"
    )
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/xml")
    servers = validate_clientconfig(answer.body)
    assert servers == [
        {"type": "imap", "hostname": HOST, "port": str(ports["imaps"]), "socketType": "SSL",
         "authentication": "password-cleartext", "username": "alice@example.test"},
        {"type": "imap", "hostname": HOST, "port": str(ports["imap"]), "socketType": "STARTTLS",
         "authentication": "password-cleartext", "username": "alice@example.test"},
        {"type": "smtp", "hostname": HOST, "port": str(ports["submissions"]), "socketType": "SSL",
         "authentication": "password-cleartext", "username": "alice@example.test"},
        {"type": "smtp", "hostname": HOST, "port": str(ports["submission"]),
         "socketType": "STARTTLS", "authentication": "password-cleartext",
         "username": "alice@example.test"},
    ]  # fmt: skip
    # the MX listener (no AUTH required, not a submission port) is no client endpoint
    assert ET.fromstring(answer.body).find("emailProvider/domain").text == DOMAIN


def test_thunderbird_autoconfig_without_an_address(setup):
    _server, client, ports = setup
    for path, host in (
        ("/mail/config-v1.1.xml", "autoconfig.example.test"),
        ("/.well-known/autoconfig/mail/config-v1.1.xml", "example.test:8080"),
        ("/.well-known/autoconfig/mail/config-v1.1.xml", "autoconfig.Example.Test."),
    ):
        answer = get(client, path, host)
        assert answer.status == 200, (path, host, answer.body)
        servers = validate_clientconfig(answer.body)
        assert {s["username"] for s in servers} == {"%EMAILADDRESS%"}
        assert servers[0]["port"] == str(ports["imaps"]) and servers[0]["socketType"] == "SSL"


def test_thunderbird_autoconfig_only_for_hosted_domains(setup):
    _server, client, _ports = setup
    assert get(client, "/mail/config-v1.1.xml", "autoconfig.elsewhere.test").status == 404
    assert (
        get(client, "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a@elsewhere.test",
            "example.test").status
        == 404
    )  # fmt: skip
    assert get(client, "/.well-known/autoconfig/mail/config-v1.1.xml", "127.0.0.1").status == 404
    # /mail/config-v1.1.xml belongs to the autoconfig host only
    assert get(client, "/mail/config-v1.1.xml", "example.test").status == 404
    bad = get(
        client, "/mail/config-v1.1.xml?emailaddress=not-an-address", "autoconfig.example.test"
    )
    assert bad.status == 400


# -- Autodiscover ---------------------------------------------------------------------------


def test_outlook_autodiscover_answers_a_pox_request(setup):
    _server, client, ports = setup
    answer = client.request(
        "POST",
        "/Autodiscover/Autodiscover.xml",  # as Outlook writes it
        auth=None,
        raw=AUTODISCOVER_REQUEST,
        headers={"Host": "autodiscover.example.test", "Content-Type": "text/xml"},
    )
    assert answer.status == 200, answer.body
    root = ET.fromstring(answer.body)
    assert (
        root.tag
        == "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}Autodiscover"
    )
    account = root.find(f"{RESPONSE_NS}Response/{RESPONSE_NS}Account")
    assert account.find(f"{RESPONSE_NS}AccountType").text == "email"
    assert account.find(f"{RESPONSE_NS}Action").text == "settings"
    protocols = {
        p.find(f"{RESPONSE_NS}Type").text: {c.tag.removeprefix(RESPONSE_NS): c.text for c in p}
        for p in account.findall(f"{RESPONSE_NS}Protocol")
    }
    assert set(protocols) == {"IMAP", "SMTP"}
    imap, smtp = protocols["IMAP"], protocols["SMTP"]
    assert (imap["Server"], imap["Port"]) == (HOST, str(ports["imaps"]))
    assert (smtp["Server"], smtp["Port"]) == (HOST, str(ports["submissions"]))
    for protocol in (imap, smtp):
        # implicit TLS: Outlook reads Encryption "TLS" as STARTTLS, so it must say SSL
        assert (protocol["SSL"], protocol["Encryption"]) == ("on", "SSL")
        assert protocol["LoginName"] == "alice@example.test"
        assert protocol["SPA"] == "off" and protocol["AuthRequired"] == "on"


def test_autodiscover_with_starttls_only_says_tls(start_server):
    server = start_http(start_server, extra="""
[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true
""")  # fmt: skip
    with ApiClient(server.address("http")) as client:
        answer = client.request("POST", "/autodiscover/autodiscover.xml", auth=None,
                                raw=AUTODISCOVER_REQUEST)  # fmt: skip
    root = ET.fromstring(answer.body)
    encryption = [e.text for e in root.iter(f"{RESPONSE_NS}Encryption")]
    ports = [e.text for e in root.iter(f"{RESPONSE_NS}Port")]
    assert encryption == ["TLS", "TLS"]
    assert ports == [str(server.address("imap")[1]), str(server.address("submission")[1])]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not xml", 400),
        (b"<Autodiscover><Request/></Autodiscover>", 400),
        # an entity bomb is refused, not expanded
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx">'
            b'<!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;">]>'
            b"<Autodiscover><Request><EMailAddress>&y;</EMailAddress></Request></Autodiscover>",
            400,
        ),
        (AUTODISCOVER_REQUEST.replace(b"example.test", b"elsewhere.test"), 404),
        (b"<Autodiscover><Request><EMailAddress>" + b"a" * 20000 + b"</EMailAddress>"
         b"</Request></Autodiscover>", 413),
    ],
)  # fmt: skip
def test_autodiscover_refuses_what_it_cannot_answer(setup, body, status):
    _server, client, _ports = setup
    answer = client.request("POST", "/autodiscover/autodiscover.xml", auth=None, raw=body)
    assert answer.status == status, answer.body
    assert client.get("/autodiscover/autodiscover.xml", auth=None).status == 405


def test_autodiscover_for_another_schema_is_an_error_document(setup):
    _server, client, _ports = setup
    body = AUTODISCOVER_REQUEST.replace(
        b"outlook/responseschema/2006a", b"mobilesync/responseschema/2006"
    )
    answer = client.request("POST", "/autodiscover/autodiscover.xml", auth=None, raw=body)
    assert answer.status == 200
    assert b"<ErrorCode>600</ErrorCode>" in answer.body


# -- Apple ----------------------------------------------------------------------------------


def test_apple_profile_is_a_plist_with_the_servers(setup):
    _server, client, ports = setup
    answer = get(client, "/apple/alice%40example.test.mobileconfig", "mail.example.test")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(answer.body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == "alice@example.test"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        HOST,
        ports["imaps"],
    )
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == (
        HOST,
        ports["submissions"],
    )
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert "IncomingPassword" not in mail  # never a password in a public document
    again = plistlib.loads(get(client, "/apple/alice@example.test.mobileconfig", HOST).body)
    assert again["PayloadUUID"] == profile["PayloadUUID"]  # stable: reinstalling replaces
    assert get(client, "/apple/alice@elsewhere.test.mobileconfig", HOST).status == 404
    assert get(client, "/apple/nobody.mobileconfig", HOST).status == 400


# -- MTA-STS --------------------------------------------------------------------------------


def test_mta_sts_policy_is_served_for_the_right_host_only(setup):
    _server, client, _ports = setup
    answer = get(client, "/.well-known/mta-sts.txt", "mta-sts.example.test")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.body == (
        b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\n"
        b"mx: backup.example.test\r\nmax_age: 2592000\r\n"
    )
    assert get(client, "/.well-known/mta-sts.txt", "example.test").status == 404
    assert get(client, "/.well-known/mta-sts.txt", "mta-sts.elsewhere.test").status == 404
    assert get(client, "/.well-known/mta-sts.txt", "mail.example.test").status == 404


def test_mta_sts_defaults(start_server):
    server = start_http(start_server)
    with ApiClient(server.address("http")) as client:
        answer = get(client, "/.well-known/mta-sts.txt", "mta-sts.example.test")
    assert answer.body == (
        b"version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"
    )


def test_methods_and_metrics(setup):
    server, client, _ports = setup
    head = client.request("HEAD", "/.well-known/mta-sts.txt", auth=None,
                          headers={"Host": "mta-sts.example.test"})  # fmt: skip
    assert (head.status, head.body) == (200, b"")
    assert int(head.headers["content-length"]) > 0
    put = client.request("PUT", "/mail/config-v1.1.xml", auth=None, raw=b"x",
                         headers={"Host": "autoconfig.example.test"})  # fmt: skip
    assert (put.status, put.headers["allow"]) == (405, "GET, HEAD")
    counter = server.context.metrics.counter(
        "stalwart_http_requests",
        "HTTP requests answered, by route and status",
        ["route", "status"],
    )
    assert counter.labels("GET /.well-known/mta-sts.txt", "200")._value.get() >= 1


def test_mta_sts_policy_over_verified_https(start_server, ca, client_tls, tmp_path):
    """As a sending MTA fetches it (RFC 8461 3.3): HTTPS to mta-sts.<domain>, the certificate
    verified for that name, then the policy."""
    issued = ca.issue_cert("mta-sts.example.test")
    cert, key = tmp_path / "sts.pem", tmp_path / "sts.key"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    https = http_listener(
        "https",
        **{"tls.implicit": "true", "tls.certificate": f'"{cert}"', "tls.private-key": f'"{key}"'},
    )
    server = start_http(start_server, extra=https + '[mta-sts]\nmode = "enforce"\n')
    host, port = server.address("https")
    with (
        socket.create_connection((host, port), timeout=20) as raw,
        client_tls.wrap_socket(raw, server_hostname="mta-sts.example.test") as tls,
    ):
        tls.sendall(
            b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
            b"Connection: close\r\n\r\n"
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    status, headers, body = raw_response(data)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert body.startswith(b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\n")
