"""The plugin API is versioned: a protocol declares the API versions it supports, and a server
outside that range refuses the configuration at start, naming both versions."""

from __future__ import annotations

import pytest

from stalwart_py.config import ConfigError
from stalwart_py.plugin import API_VERSION, Connection, Protocol, api_mismatch
from stalwart_py.server import Server, load
from tests.support.servers import write_config

CONFIG = """
[server.listener.old]
bind = "127.0.0.1:0"
protocol = "old"

[server.listener.fine]
bind = "127.0.0.1:0"
protocol = "fine"
"""


def protocol(name: str, versions: object) -> type[Protocol]:
    async def handle(self: Protocol, conn: Connection) -> None:
        await conn.send(b"hello\n")

    return type(
        name.title(), (Protocol,), {"name": name, "api_versions": versions, "handle": handle}
    )


def test_the_api_has_a_version():
    assert isinstance(API_VERSION, int)
    assert API_VERSION >= 1


def test_a_plugin_that_says_nothing_was_written_for_version_1():
    assert Protocol.api_versions == (1, 1)


@pytest.mark.parametrize(
    ("versions", "words"),
    [
        ((API_VERSION + 1, API_VERSION + 2), "upgrade stalwart-py"),
        ((API_VERSION - 1, API_VERSION - 1), "upgrade the plugin"),
    ],
)
def test_a_mismatch_stops_the_server_naming_both_versions(tmp_path, versions, words):
    classes = {"old": protocol("old", versions), "fine": protocol("fine", (1, API_VERSION))}
    path = write_config(tmp_path, CONFIG)
    with pytest.raises(ConfigError) as caught:
        Server(path, protocols=classes)
    (issue,) = caught.value.issues
    assert issue.path == "server.listener.old.protocol"
    low, high = versions
    span = f"version {low}" if low == high else f"versions {low} to {high}"
    assert 'protocol plugin "old"' in issue.message
    assert f"supports plugin API {span}" in issue.message
    assert f"provides plugin API version {API_VERSION}" in issue.message
    assert words in issue.message
    # check-config and reloads load the same way
    with pytest.raises(ConfigError):
        load(path, classes, serving=True)


def test_a_compatible_range_loads(tmp_path):
    classes = {
        "old": protocol("old", (API_VERSION, API_VERSION + 5)),
        "fine": protocol("fine", (1, API_VERSION)),
    }
    config = load(write_config(tmp_path, CONFIG), classes, serving=True)
    assert set(config.listeners) == {"old", "fine"}


@pytest.mark.parametrize("versions", [None, 1, (2, 1), ("1", "2"), (1, 2, 3), (True, True)])
def test_a_malformed_declaration_is_named(versions):
    message = api_mismatch(protocol("odd", versions))
    assert message is not None
    assert f"declares api_versions = {versions!r}" in message
    assert "expected (low, high)" in message


def test_every_installed_protocol_supports_this_version():
    from stalwart_py.plugin import discover_protocols

    for name, cls in discover_protocols().items():
        assert api_mismatch(cls) is None, name
