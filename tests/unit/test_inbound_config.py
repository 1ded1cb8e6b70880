"""``[auth]``, ``[spam.dnsbl]`` and ``smtp.rate.*``: defaults (every check on, relaxed; no
blocklist; no rate limit) and errors that name the file, the key path and what was expected."""

from __future__ import annotations

import pytest

from protocols.smtp import SmtpSettings
from stalwart_py.config import ConfigError, parse_config

GOOD = """
[storage]
data-dir = "/tmp/unused"
"""


def test_defaults_need_no_configuration(tmp_path):
    config = parse_config(GOOD, tmp_path / "c.toml", {})
    for method in ("spf", "dkim", "dmarc", "arc", "iprev"):
        assert getattr(config.auth, method).verify == "relaxed"
    assert config.auth.arc.trusted_sealers == ()
    assert config.spam.dnsbl.ip_zones == ()
    assert config.spam.dnsbl.action == "reject"
    assert SmtpSettings().rate.connections_per_ip is None
    assert SmtpSettings().rate.messages_per_ip is None


def test_every_key(tmp_path):
    text = (
        GOOD
        + """
[auth.spf]
verify = "strict"
[auth.dmarc]
verify = "disable"
[auth.arc]
trusted-sealers = "lists.example.org"
[spam.dnsbl]
ip-zones = ["zen.spamhaus.org"]
domain-zones = ["dbl.spamhaus.org"]
allow-zones = ["list.dnswl.org"]
action = "junk"
[server.smtp]
rate.connections-per-ip = 30
rate.messages-per-ip = 60
[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"
"""
    )
    config = parse_config(text, tmp_path / "c.toml", {"smtp": SmtpSettings})
    assert config.auth.spf.verify == "strict"
    assert config.auth.dmarc.verify == "disable"
    assert config.auth.arc.trusted_sealers == ("lists.example.org",)
    assert config.spam.dnsbl.ip_zones == ("zen.spamhaus.org",)
    assert config.spam.dnsbl.allow_zones == ("list.dnswl.org",)
    assert config.spam.dnsbl.action == "junk"
    rate = config.listeners["mx"].settings.protocol.rate
    assert (rate.connections_per_ip, rate.messages_per_ip) == (30, 60)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[auth.spf]\nverify = "yes"', "auth.spf.verify", "relaxed"),
        ('[auth.dkim]\nmode = "strict"', "auth.dkim.mode", "unknown key"),
        ('[spam.dnsbl]\naction = "drop"', "spam.dnsbl.action", "reject"),
        ("[spam.dnsbl]\nip-zones = [1]", "spam.dnsbl.ip-zones", "host name"),
        (
            "[server.smtp]\nrate.messages-per-ip = 0",
            "server.smtp.rate.messages-per-ip",
            "at least 1",
        ),
    ],
)
def test_errors_name_the_file_the_key_and_what_was_expected(tmp_path, text, key, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(GOOD + text, tmp_path / "c.toml", {"smtp": SmtpSettings})
    message = str(error.value)
    assert "c.toml" in message and key in message and expected in message, message
