"""The ``imap.*`` settings: defaults, merging, and the values RFC 9051 forbids."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.imap import Imap, ImapSettings
from stalwart_py.config import ConfigError
from stalwart_py.config.loader import parse_config

BASE = """
[storage]
data-dir = "/tmp/unused"

[server.imap]
max-literal-size = "10M"

[server.listener.imap]
bind = "127.0.0.1:2143"
protocol = "imap"
"""


def settings(text: str) -> ImapSettings:
    config = parse_config(text, Path("config.toml"), {"imap": Imap.settings}, env={})
    return config.listeners["imap"].settings.protocol


def test_defaults_and_merging():
    merged = settings(BASE + 'imap.auth.allow-plaintext = true\nimap.idle-timeout = "1h"\n')
    assert merged.auth.allow_plaintext is True
    assert merged.idle_timeout == 3600.0
    assert merged.max_literal_size == 10 * 1024 * 1024  # from [server.imap]
    assert merged.max_command_length == 64 * 1024
    assert merged.max_append_size == 100 * 1024 * 1024
    assert ImapSettings().auth.allow_plaintext is False


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('imap.idle-timeout = "5m"', "idle-timeout must be at least 30 minutes"),
        ("imap.max-command-length = 100", "max-command-length must be at least 1K"),
        ('imap.max-append-size = "1M"', "max-append-size must be at least max-literal-size"),
        ("imap.max-append-size = -1", "max-append-size"),
        ("imap.auth.max-failures = 0", "expected an integer from 1 to 100"),
        ("imap.auth.allow-plaintxt = true", 'did you mean "allow-plaintext"'),
    ],
)
def test_impossible_values_are_refused(line, message):
    with pytest.raises(ConfigError) as error:
        settings(BASE + line + "\n")
    assert message in str(error.value)
