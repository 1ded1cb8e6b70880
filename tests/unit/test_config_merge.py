"""The one merge rule: [server] defaults, the listener, then peer scopes (server, listener)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from stalwart_py.config import ConfigError, explain, explain_json, parse_config
from stalwart_py.config.types import parse_network


@dataclass(frozen=True)
class ToySettings:
    greeting: str = "hi"
    limit: int = 10
    domains: dict[str, bool] | None = None


PROTOCOLS = {"toy": ToySettings, "other": None}


def load(text: str):
    return parse_config(text, Path("/etc/stalwart-py/test.toml"), PROTOCOLS)


CONFIG = """
[server]
hostname = "mx.example.test"
max-connections = 100
idle-timeout = "2m"

[server.socket]
backlog = 64
nodelay = false

[server.toy]
greeting = "server default"
domains = { "a.test" = true, "b.test" = true }

[server.peer."10.0.0.0/8"]
toy.limit = 80
idle-timeout = "10s"

[server.listener.one]
bind = ["127.0.0.1:2525", "[::1]:2525"]
protocol = "toy"
socket.backlog = 32
toy.domains = { "b.test" = false, "c.test" = true }

[server.listener.one.peer."10.1.0.0/16"]
toy.limit = 5000

[server.listener.two]
bind = "/run/two.sock"
protocol = "toy"
"""


def test_server_defaults_are_merged_into_every_listener():
    config = load(CONFIG)
    one, two = config.listeners["one"], config.listeners["two"]
    assert one.settings.socket.backlog == 32  # the listener wins
    assert one.settings.socket.nodelay is False  # inherited from [server.socket]
    assert two.settings.socket.backlog == 64
    assert one.settings.idle_timeout == 120.0
    assert one.settings.hostname == "mx.example.test"
    assert two.settings.protocol.greeting == "server default"
    # Tables merge key by key; the listener's value for a key wins.
    assert one.settings.protocol.domains == {"a.test": True, "b.test": False, "c.test": True}
    assert config.server.max_connections == 100
    assert one.settings.max_connections is None  # the server-wide cap is not a listener limit


def test_peer_scopes_apply_server_first_then_listener():
    one = load(CONFIG).listeners["one"]
    ip = parse_network("10.1.2.3").network_address
    settings = one.effective[one.scope_for(ip)]
    assert settings.protocol.limit == 5000  # listener scope over server scope
    assert settings.idle_timeout == 10.0  # from the server scope
    other = one.effective[one.scope_for(parse_network("10.200.0.1").network_address)]
    assert other.protocol.limit == 80
    outside = one.effective[one.scope_for(parse_network("192.0.2.1").network_address)]
    assert outside.protocol.limit == 10
    mapped = parse_network("::ffff:10.1.0.9").network_address  # IPv4-mapped IPv6 matches too
    assert one.effective[one.scope_for(mapped)].protocol.limit == 5000


def test_origins_say_where_each_value_came_from():
    one = load(CONFIG).listeners["one"]
    origins = one.origins[(-1, -1)]
    assert origins["socket.backlog"] == "[server.listener.one]"
    assert origins["socket.nodelay"] == "[server]"
    assert origins["toy.greeting"] == "[server]"
    assert "toy.limit" not in origins  # the default
    scoped = one.origins[(0, 0)]
    assert scoped["toy.limit"] == '[server.listener.one.peer."10.1.0.0/16"]'
    assert scoped["idle-timeout"] == '[server.peer."10.0.0.0/8"]'


def test_explain_renders_values_and_origins():
    text = explain(load(CONFIG))
    assert "[listener one] protocol toy, bind 127.0.0.1:2525, [::1]:2525, enabled" in text
    lines = {
        line.split("#")[0].strip(): line.split("#")[1].strip()
        for line in text.splitlines()
        if "#" in line and "=" in line
    }
    assert lines["socket.backlog = 32"] == "[server.listener.one]"
    assert lines["socket.nodelay = false"] == "[server]"
    assert lines["toy.limit = 10"] == "default"
    assert lines["toy.limit = 5000"] == '[server.listener.one.peer."10.1.0.0/16"]'
    assert 'for peers matching server peer "10.0.0.0/8" and listener peer "10.1.0.0/16":' in text


def test_explain_json_has_the_same_values_and_origins():
    document = explain_json(load(CONFIG))
    json.dumps(document)  # plain JSON all the way down
    assert document["hostname"] == "mx.example.test"
    assert document["server"]["max-connections"] == 100
    one = next(item for item in document["listeners"] if item["id"] == "one")
    assert one["protocol"] == "toy"
    assert one["bind"] == ["127.0.0.1:2525", "[::1]:2525"]
    assert one["settings"]["socket.backlog"] == {"value": 32, "origin": "[server.listener.one]"}
    assert one["settings"]["socket.nodelay"] == {"value": False, "origin": "[server]"}
    assert one["settings"]["idle-timeout"] == {"value": 120, "origin": "[server]"}
    assert one["settings"]["toy.limit"] == {"value": 10, "origin": "default"}
    assert one["settings"]["toy.domains"]["value"] == {
        "a.test": True,
        "b.test": False,
        "c.test": True,
    }
    both = next(
        scope
        for scope in one["peer-scopes"]
        if scope["peers"] == ['server peer "10.0.0.0/8"', 'listener peer "10.1.0.0/16"']
    )
    assert both["settings"]["toy.limit"] == {
        "value": 5000,
        "origin": '[server.listener.one.peer."10.1.0.0/16"]',
    }
    assert both["settings"]["idle-timeout"] == {"value": 10, "origin": '[server.peer."10.0.0.0/8"]'}
    assert "socket.backlog" not in both["settings"]  # only what differs from the listener


def test_peer_connection_limits_count_per_scope():
    config = load(
        CONFIG
        + """
[server.listener.three]
bind = "127.0.0.1:2526"
protocol = "toy"
max-connections = 50

[server.listener.three.peer."10.9.0.0/16"]
max-connections = 2
"""
    )
    three = config.listeners["three"]
    scope = three.scope_for(parse_network("10.9.0.1").network_address)
    assert three.peer_limit(scope) == ('server.listener.three.peer."10.9.0.0/16"', 2)
    assert three.peer_limit((-1, -1)) is None  # the listener's own limit is not a peer limit


def test_errors_name_where_a_value_was_written_once():
    with pytest.raises(ConfigError) as info:
        load(CONFIG.replace("backlog = 64", 'backlog = "x"'))
    assert [str(i) for i in info.value.issues] == [
        "/etc/stalwart-py/test.toml: server.socket.backlog: expected an integer from 1 to "
        '65535, found "x" (a string)'
    ]


def test_every_error_is_reported_not_just_the_first():
    with pytest.raises(ConfigError) as info:
        load(
            CONFIG.replace("backlog = 64", "backlog = 0")
            .replace('"2m"', '"2 minutes"')
            .replace("socket.backlog = 32", "socket.backlog = 32\nbnd = 1")
        )
    paths = sorted(issue.path for issue in info.value.issues)
    assert paths == ["server.idle-timeout", "server.listener.one.bnd", "server.socket.backlog"]


def test_other_protocol_tables_do_not_leak_into_a_listener():
    config = load(CONFIG + "\n[server.other]\n")
    assert config.listeners["one"].settings.protocol.greeting == "server default"
    with pytest.raises(ConfigError, match="toy settings on a listener whose protocol is other"):
        load(
            CONFIG + '\n[server.listener.x]\nbind = "127.0.0.1:1"\nprotocol = "other"\n'
            "toy.limit = 1\n"
        )


def test_environment_overrides_with_their_origin():
    env = {
        "STALWART__SERVER__HOSTNAME": "env.example.test",
        "STALWART__SERVER__LISTENER__ONE__SOCKET__BACKLOG": "7",
        "STALWART__SERVER__LISTENER__ONE__BIND": '["127.0.0.1:9", "[::1]:9"]',
        "STALWART__SERVER__LISTENER__TWO__BIND": "/run/other.sock",
        "STALWART__SERVER__TOY__GREETING": "from the environment",
        "UNRELATED": "x",
    }
    config = parse_config(CONFIG, Path("/etc/stalwart-py/test.toml"), PROTOCOLS, env)
    one, two = config.listeners["one"], config.listeners["two"]
    assert config.hostname == "env.example.test"
    assert one.settings.socket.backlog == 7
    assert [str(b) for b in one.bind] == ["127.0.0.1:9", "[::1]:9"]
    assert [str(b) for b in two.bind] == ["/run/other.sock"]
    assert two.settings.protocol.greeting == "from the environment"
    origins = one.origins[(-1, -1)]
    assert origins["socket.backlog"] == (
        "environment STALWART__SERVER__LISTENER__ONE__SOCKET__BACKLOG"
    )
    assert origins["toy.greeting"] == "environment STALWART__SERVER__TOY__GREETING"
    shorthand = parse_config(CONFIG, Path("/x.toml"), PROTOCOLS, {"STALWART_HOSTNAME": "s.test"})
    assert shorthand.hostname == "s.test"


def test_an_environment_error_names_the_variable():
    env = {
        "STALWART__SERVER__SOCKET__BACKLOG": "lots",
        "STALWART__SERVER__LISTENER__ONE__BIND": "localhost:25",
    }
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG, Path("/etc/stalwart-py/test.toml"), PROTOCOLS, env)
    assert sorted(str(issue) for issue in info.value.issues) == [
        "environment variable STALWART__SERVER__LISTENER__ONE__BIND: server.listener.one.bind:"
        ' expected an address such as "*:25", "[::]:25", "127.0.0.1:2525" or an absolute socket '
        "path, found \"localhost:25\" (a string) ('localhost' is not an IPv4 address (IPv6 "
        "addresses go in brackets: [::1]:25))",
        "environment variable STALWART__SERVER__SOCKET__BACKLOG: server.socket.backlog: expected"
        ' an integer from 1 to 65535, found "lots" (a string)',
    ]
