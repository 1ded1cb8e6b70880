"""``[mta-sts]``: defaults, values, errors naming file, key and what was expected; the policy
text and its id (which changes with the policy); the client endpoints of a configuration."""

from __future__ import annotations

import pytest

from stalwart_py import clients
from stalwart_py.config import ConfigError, parse_config
from stalwart_py.config.clients import MtaStsSettings
from stalwart_py.plugin import discover_protocols
from stalwart_py.server import protocol_settings

GOOD = '[server]\nhostname = "mail.example.test"\n[storage]\ndata-dir = "/tmp/unused"\n'
SETTINGS = protocol_settings(discover_protocols())


def load(tmp_path, text: str = ""):
    return parse_config(GOOD + text, tmp_path / "c.toml", SETTINGS, env={})


def test_mta_sts_defaults_and_values(tmp_path):
    config = load(tmp_path)
    assert config.mta_sts == MtaStsSettings("testing", 604800.0, ())
    assert clients.mta_sts_policy(config) == (
        "version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"
    )
    changed = load(
        tmp_path, '[mta-sts]\nmode = "enforce"\nmax-age = "90d"\nmx = "mx.example.test"\n'
    )
    assert changed.mta_sts == MtaStsSettings("enforce", 90 * 86400.0, ("mx.example.test",))
    assert "mx: mx.example.test\r\n" in clients.mta_sts_policy(changed)
    # the id changes exactly when the policy does (RFC 8461 3.1)
    assert clients.mta_sts_id(config) == clients.mta_sts_id(load(tmp_path))
    assert clients.mta_sts_id(config) != clients.mta_sts_id(changed)
    assert clients.mta_sts_id(config).isalnum() and len(clients.mta_sts_id(config)) <= 32


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ('mode = "strict"', "mta-sts.mode", "testing"),
        ('max-age = "400d"', "mta-sts.max-age", "31557600"),
        ("mx = [1]", "mta-sts.mx[0]", "host"),
        ('sauce = "x"', "mta-sts.sauce", "unknown"),
    ],
)
def test_mta_sts_errors_name_the_file_and_key(tmp_path, text, path, message):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, f"[mta-sts]\n{text}\n")
    [issue] = raised.value.issues
    assert issue.file.endswith("c.toml")
    assert issue.path == path
    assert message in issue.message.lower() or message in issue.message


def test_endpoints_follow_the_listeners(tmp_path):
    config = load(
        tmp_path,
        """
[server.listener.imap]
bind = ["*:143", "[::]:143"]
protocol = "imap"
[server.listener.imaps]
bind = "*:993"
protocol = "imap"
tls.implicit = true
[server.listener.off]
bind = "*:1993"
protocol = "imap"
tls.implicit = true
enable = false
[server.listener.mx]
bind = "*:25"
protocol = "smtp"
[server.listener.submissions]
bind = "*:465"
protocol = "smtp"
tls.implicit = true
[server.listener.lmtp]
bind = "/tmp/unused/lmtp.sock"
protocol = "lmtp"
[server.listener.sieve]
bind = "*:4190"
protocol = "managesieve"
hostname = "sieve.example.test"
""",
    )
    found = [(e.service, e.host, e.port, e.security) for e in clients.endpoints(config)]
    assert found == [
        ("imap", "mail.example.test", 993, "tls"),
        ("imap", "mail.example.test", 143, "starttls"),
        ("managesieve", "sieve.example.test", 4190, "starttls"),
        ("submission", "mail.example.test", 465, "tls"),  # a submission port, AUTH or not
    ]
