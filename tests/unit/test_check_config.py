"""``stalwart-py check-config`` on broken files: each error names file, key path, expectation."""

from __future__ import annotations

import pytest

from stalwart_py import cli, server
from tests.support.protocols import PROTOCOLS

GOOD = """
[storage]
data-dir = "/tmp/unused"

[server.listener.probe]
bind = ["127.0.0.1:2525"]
protocol = "probe"
"""


@pytest.fixture(autouse=True)
def installed_protocols(monkeypatch):
    monkeypatch.setattr(server, "discover_protocols", lambda: dict(PROTOCOLS))


def check(tmp_path, capsys, text, *args):
    path = tmp_path / "config.toml"
    path.write_text(text)
    code = cli.main(["check-config", "--config", str(path), *args])
    out, err = capsys.readouterr()
    return code, out, err.replace(str(path), "FILE")


BROKEN = [
    (
        "[server\nhostname = 1",
        "FILE: invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 8)",
    ),
    (
        GOOD + "idle-timout = 5\n",
        'FILE: server.listener.probe.idle-timout: unknown key (did you mean "idle-timeout"?)',
    ),
    (
        GOOD + "protocl = 1\n",
        'FILE: server.listener.probe.protocl: unknown key (did you mean "protocol"?)',
    ),
    (
        GOOD + '\n[server.socket]\nbacklog = "lots"\n',
        'FILE: server.socket.backlog: expected an integer from 1 to 65535, found "lots" (a string)',
    ),
    (
        GOOD + "socket.backlog = 0\n",
        "FILE: server.listener.probe.socket.backlog: expected an integer from 1 to 65535, "
        "found 0 (an integer)",
    ),
    (
        GOOD.replace('"127.0.0.1:2525"', '"localhost:25"'),
        'FILE: server.listener.probe.bind[0]: expected an address such as "*:25", "[::]:25", '
        '"127.0.0.1:2525" or an absolute socket path, found "localhost:25" (a string) '
        "('localhost' is not an IPv4 address (IPv6 addresses go in brackets: [::1]:25))",
    ),
    (
        GOOD.replace('"127.0.0.1:2525"', '"*:70000"'),
        'FILE: server.listener.probe.bind[0]: expected an address such as "*:25", "[::]:25", '
        '"127.0.0.1:2525" or an absolute socket path, found "*:70000" (a string) '
        "(port 70000 is out of range 0 to 65535)",
    ),
    (
        GOOD.replace('protocol = "probe"', ""),
        "FILE: server.listener.probe.protocol: is required: installed protocols: probe",
    ),
    (
        GOOD.replace('protocol = "probe"', 'protocol = "pop3"'),
        'FILE: server.listener.probe.protocol: unknown protocol "pop3"; installed protocols: probe',
    ),
    (
        GOOD + 'idle-timeout = "5 minutes"\n',
        'FILE: server.listener.probe.idle-timeout: expected a duration such as "30s", "5m" or "1h",'
        ' or a number of seconds, found "5 minutes" (a string)',
    ),
    (
        GOOD + '\n[server.listener.probe.peer."10.0.0.0/33"]\nallow = false\n',
        'FILE: server.listener.probe.peer."10.0.0.0/33": expected an IP network such as '
        '"10.0.0.0/8"',
    ),
    (
        GOOD + '\n[server.listener.probe.peer."10.0.0.0/8"]\nbind = "*:1"\n',
        'FILE: server.listener.probe.peer."10.0.0.0/8".bind: cannot be set in a peer scope',
    ),
    (
        GOOD + '\n[server.peer."10.0.0.0/8"]\nsocket.backlog = 5\n',
        'FILE: server.peer."10.0.0.0/8".socket.backlog: cannot be set in a peer scope: it applies '
        "to the listening socket",
    ),
    (
        GOOD + 'tls.certificate = "/etc/cert.pem"\n',
        "FILE: server.listener.probe.tls: certificate and private-key must be given together",
    ),
    (
        GOOD + '\n[server.listener.again]\nbind = "127.0.0.1:2525"\nprotocol = "probe"\n',
        "FILE: server.listener.again.bind: 127.0.0.1:2525 is already bound by listener probe",
    ),
    (GOOD + "\n[storag]\n", 'FILE: storag: unknown key (did you mean "storage"?)'),
    (
        GOOD + 'socket.file-mode = "0999"\n',
        'FILE: server.listener.probe.socket.file-mode: expected an octal file mode such as "0660" '
        'or 0o660, found "0999" (a string)',
    ),
    (
        GOOD + "allow = false\n",
        "FILE: server.listener.probe.allow: can only be set in a peer scope",
    ),
    ('[server]\nbind = "*:25"\n', "FILE: server.bind: can only be set on a listener"),
    (
        GOOD + "probe.greeting = 5\n",
        "FILE: server.listener.probe.probe.greeting: expected a string, found 5 (an integer)",
    ),
    (
        GOOD + '\n[logging]\nlevel = "verbose"\n',
        'FILE: logging.level: expected one of "debug", "info", "warning", "error", found "verbose" '
        "(a string)",
    ),
    (
        GOOD + 'tls.min-version = "1.0"\n',
        'FILE: server.listener.probe.tls.min-version: expected "1.2" or "1.3", found "1.0" '
        "(a string)",
    ),
    (
        GOOD + 'enable = "yes"\n',
        'FILE: server.listener.probe.enable: expected true or false, found "yes" (a string)',
    ),
    (
        GOOD + "\n[directory.throttle]\nmax-failures-per-account = 10\n",
        "FILE: directory.throttle.max-failures-per-account: renamed to "
        "max-failures-per-address-and-account: failures now count per account from each "
        "client address, so that no address can lock an account for everyone",
    ),
]


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[m.split(": ")[1] for _, m in BROKEN])
def test_a_broken_file_is_reported_precisely(tmp_path, capsys, text, message):
    code, _, err = check(tmp_path, capsys, text)
    assert code == 1
    assert message in err.splitlines(), err
    assert err.rstrip().endswith("1 error")


def test_a_misspelt_required_key(tmp_path, capsys):
    code, _, err = check(tmp_path, capsys, GOOD.replace("bind =", "bnd ="))
    assert code == 1
    assert 'FILE: server.listener.probe.bnd: unknown key (did you mean "bind"?)' in err
    assert "FILE: server.listener.probe.bind: is required: the addresses to listen on" in err


def test_every_error_is_listed(tmp_path, capsys):
    text = GOOD + "socket.backlog = 0\nidle-timeout = true\n\n[server.tls]\nimplicit = 1\n"
    code, _, err = check(tmp_path, capsys, text)
    assert code == 1
    assert err.rstrip().endswith("3 errors")


def test_a_certificate_that_does_not_load(tmp_path, capsys):
    (tmp_path / "key.pem").write_text("not a key")
    (tmp_path / "cert.pem").write_text("not a certificate")
    code, _, err = check(
        tmp_path, capsys, GOOD + 'tls.certificate = "cert.pem"\ntls.private-key = "key.pem"\n'
    )
    assert code == 1
    assert "FILE: server.listener.probe.tls: cannot use certificate" in err


def test_a_valid_file_and_explain(tmp_path, capsys):
    code, out, _ = check(tmp_path, capsys, GOOD)
    assert code == 0
    assert "valid; 1 listener(s) enabled, 0 disabled" in out
    assert "probe: probe on 127.0.0.1:2525" in out
    code, out, _ = check(tmp_path, capsys, GOOD + "socket.backlog = 9\n", "--explain")
    assert code == 0
    assert "socket.backlog = 9" in out and "# [server.listener.probe]" in out
    assert 'probe.greeting = "probe"' in out


def test_default_config_path_comes_from_the_environment(tmp_path, capsys, monkeypatch):
    path = tmp_path / "env.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("STALWART_PY_CONFIG", str(path))
    assert cli.main(["check-config"]) == 0
    assert str(path) in capsys.readouterr().out
