"""The smtp.* and lmtp.* tables through the configuration loader."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from protocols.smtp import LmtpSettings, Smtp, SmtpSettings
from stalwart_py.config import ConfigError, parse_config

PROTOCOLS = {"smtp": SmtpSettings, "lmtp": LmtpSettings}


def load(text: str):
    return parse_config(text, Path("/etc/stalwart-py/config.toml"), PROTOCOLS)


def test_defaults_merge_and_peer_scopes():
    config = load("""
[server.smtp]
max-message-size = "10M"
relay-hosts = "10.0.0.0/8"

[server.smtp.domains."*.example.net"]
fbl = true

[server.listener.mx]
bind = "*:25"
protocol = "smtp"
smtp.banner = "hello"

[server.listener.mx.peer."192.0.2.0/24"]
smtp.max-recipients-per-message = 5

[server.listener.lmtp]
bind = "/run/lmtp.sock"
protocol = "lmtp"
""")
    mx = config.listeners["mx"]
    settings = mx.settings.protocol
    assert settings.max_message_size == 10 * 1024 * 1024 and settings.banner == "hello"
    assert settings.relay_hosts == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.domains["*.example.net"].fbl is True
    assert settings.max_recipients_per_message == 1024
    scoped = mx.effective[mx.scope_for(ipaddress.ip_address("192.0.2.7"))].protocol
    assert scoped.max_recipients_per_message == 5
    lmtp = config.listeners["lmtp"].settings.protocol
    assert isinstance(lmtp, LmtpSettings) and lmtp.banner == "LMTP stalwart-py"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server.smtp]\nbare-lf = "maybe"', 'expected one of "reject", "fix"'),
        ('[server.smtp.domains."Example.COM"]\nrelay = true', "lowercase domain"),
        ('[server.smtp.domains."*."]\nrelay = true', "lowercase domain"),
        ('[server.smtp]\nauth.mechanisms = ["CRAM-MD5"]', 'expected one of "PLAIN", "LOGIN"'),
        ('[server.lmtp]\nrelay-hosts = ["10.0.0.0/8"]', "unknown key"),
        ("[server.lmtp]\ndeferred-spool = true", "unknown key"),  # LMTP never relays
        ('[server.smtp]\ndeferred-spool = "yes"', "expected"),
        ('[server.smtp]\ntimeout.command = "soon"', "expected a duration"),
    ],
)
def test_bad_values_are_config_errors(text, message):
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert message in str(caught.value)


def test_deferred_spool_is_off_by_default_and_the_protocol_warns_when_on():
    config = load("""
[server.listener.mx]
bind = "*:25"
protocol = "smtp"

[server.listener.fast]
bind = "*:2525"
protocol = "smtp"
smtp.deferred-spool = true
""")
    mx, fast = config.listeners["mx"].settings, config.listeners["fast"].settings
    assert mx.protocol.deferred_spool is False
    assert fast.protocol.deferred_spool is True
    assert Smtp().notices(mx) == []
    [notice] = Smtp().notices(fast)
    assert notice.startswith("smtp.deferred-spool is on: mail for remote recipients is kept only")


def test_relay_hosts_default_to_exactly_the_loopback_networks():
    config = load('[server.listener.mx]\nbind = "*:25"\nprotocol = "smtp"\n')
    expected = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert config.listeners["mx"].settings.protocol.relay_hosts == expected
    assert SmtpSettings().relay_hosts == expected
