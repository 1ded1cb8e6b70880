"""``[resolver]``: defaults, values, errors naming the key, and ``queue.dns.*`` read as its
deprecated alias with a warning naming the new key."""

from __future__ import annotations

import logging

import pytest

from stalwart_py import cli, server
from stalwart_py.config import ConfigError, parse_config
from stalwart_py.config.schema import ResolverSettings
from stalwart_py.resolver import Resolver
from tests.support.protocols import PROTOCOLS

GOOD = '[storage]\ndata-dir = "/tmp/unused"\n'


@pytest.fixture(autouse=True)
def installed_protocols(monkeypatch):
    monkeypatch.setattr(server, "discover_protocols", lambda: dict(PROTOCOLS))


def test_defaults_and_values(tmp_path):
    config = parse_config(GOOD, tmp_path / "c.toml", {})
    assert config.resolver == ResolverSettings()
    assert config.resolver.nameservers == ()  # the system's
    assert config.warnings == ()
    text = GOOD + (
        '[resolver]\nnameservers = ["127.0.0.1:5353", "::1"]\ntimeout = "2s"\nattempts = 3\n'
        'cache-size = 500\nmax-ttl = "1h"\nmax-negative-ttl = "5m"\n'
    )
    resolver = parse_config(text, tmp_path / "c.toml", {}).resolver
    assert resolver == ResolverSettings(
        (("127.0.0.1", 5353), ("::1", 53)), 2.0, 3, 500, 3600.0, 300.0
    )
    built = Resolver.from_settings(resolver)
    assert built.nameservers == (("127.0.0.1", 5353), ("::1", 53))
    assert (built.timeout, built.attempts, built.cache_size) == (2.0, 3, 500)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[resolver]\nnameservers = ["ns.example"]\n',
            "c.toml: resolver.nameservers[0]: expected an IP address with an optional port, "
            'such as "127.0.0.1:5353", found "ns.example" (a string)',
        ),
        (
            "[resolver]\nattempts = 0\n",
            "c.toml: resolver.attempts: expected an integer from 1 to 10, found 0 (an integer)",
        ),
        ("[resolver]\ncache = 1\n", "c.toml: resolver.cache: unknown key (did you mean"),
        (
            '[resolver]\ntimeout = "1s"\n[queue.dns]\ntimeout = "3s"\n',
            "c.toml: queue.dns.timeout: deprecated alias of resolver.timeout, which is also set",
        ),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD + text, tmp_path / "c.toml", {})
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_queue_dns_is_a_deprecated_alias(tmp_path):
    text = GOOD + '[queue.dns]\nnameservers = ["127.0.0.1:5353"]\ntimeout = "3s"\n'
    config = parse_config(text, tmp_path / "c.toml", {})
    assert config.resolver.nameservers == (("127.0.0.1", 5353),)
    assert config.resolver.timeout == 3.0
    assert [str(w).replace(str(tmp_path) + "/", "") for w in config.warnings] == [
        "c.toml: queue.dns.nameservers: deprecated: write resolver.nameservers "
        "(the one DNS resolver); read as that",
        "c.toml: queue.dns.timeout: deprecated: write resolver.timeout "
        "(the one DNS resolver); read as that",
    ]
    # One alias beside a [resolver] that sets other keys: both apply.
    text = GOOD + '[resolver]\nattempts = 4\n[queue.dns]\ntimeout = "3s"\n'
    config = parse_config(text, tmp_path / "c.toml", {})
    assert (config.resolver.attempts, config.resolver.timeout) == (4, 3.0)


def test_check_config_says_the_new_key(tmp_path, caplog):
    path = tmp_path / "config.toml"
    path.write_text(
        GOOD + '[queue.dns]\ntimeout = "3s"\n[server.listener.smtp]\nbind = "127.0.0.1:0"\n'
        'protocol = "probe"\n'
    )
    with caplog.at_level(logging.WARNING, logger="stalwart_py"):
        assert cli.main(["check-config", "--config", str(path)]) == 0
    assert f"{path}: queue.dns.timeout: deprecated: write resolver.timeout" in caplog.text
