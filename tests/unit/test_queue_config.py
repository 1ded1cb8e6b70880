"""``[queue]`` and ``[dkim."<domain>"]``: defaults, values, and precise check-config errors."""

from __future__ import annotations

import pytest

from stalwart_py import cli, server
from stalwart_py.config import parse_config
from stalwart_py.config.types import parse_host, parse_nameserver
from tests.support.protocols import PROTOCOLS

GOOD = """
[storage]
data-dir = "/tmp/unused"
"""


@pytest.fixture(autouse=True)
def installed_protocols(monkeypatch):
    monkeypatch.setattr(server, "discover_protocols", lambda: dict(PROTOCOLS))


def check(tmp_path, capsys, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    code = cli.main(["check-config", "--config", str(path)])
    _out, err = capsys.readouterr()
    return code, err.replace(str(path), "FILE")


def test_defaults_and_a_full_table(tmp_path):
    config = parse_config(GOOD, tmp_path / "c.toml", {})
    assert config.queue.retry == (300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
    assert config.queue.max_age == 5 * 86400
    assert config.queue.relay is None
    assert config.dkim == {}
    text = (
        GOOD
        + """
[queue]
retry = ["1m", "1h"]
max-age = "2d"
max-connections-per-destination = 2

[queue.dns]
nameservers = ["127.0.0.1:5353", "[::1]:53", "192.0.2.1"]

[queue.tls]
require = ["Bank.example"]
ca-file = "ca.pem"

[queue.relay]
host = "smtp.provider.example"
user = "me"
password = "pw"

[queue.route."Corp.example"]
host = "10.0.0.5"
port = 2525

[dkim."Example.COM"]
selector = "s1"
private-key = "keys/s1.pem"
"""
    )
    config = parse_config(text, tmp_path / "c.toml", {})
    queue = config.queue
    assert (queue.retry, queue.max_age) == ((60.0, 3600.0), 172800.0)
    assert queue.dns.nameservers == (("127.0.0.1", 5353), ("::1", 53), ("192.0.2.1", 53))
    assert queue.tls.require == ("bank.example",)
    assert queue.tls.ca_file == tmp_path / "ca.pem"
    assert (queue.relay.host, queue.relay.port, queue.relay.tls) == (
        "smtp.provider.example",
        587,
        "starttls",
    )
    assert queue.route["corp.example"].port == 2525
    assert queue.route["corp.example"].tls == "opportunistic"
    assert config.dkim["example.com"].private_key == tmp_path / "keys" / "s1.pem"


BROKEN = [
    (
        '[queue]\nretry = ["5m", "soon"]\n',
        'FILE: queue.retry[1]: expected a duration such as "30s", "5m" or "1h", or a number of '
        'seconds, found "soon" (a string)',
    ),
    ("[queue]\nretry = []\n", "FILE: queue: retry needs at least one interval"),
    (
        '[queue]\nlease-time = "1s"\n',
        "FILE: queue: lease-time (1s) must be at least three times poll-interval (5s): the"
        " leases are renewed by the queue's scans",
    ),
    ("[queue]\nmax-agee = 1\n", 'FILE: queue.max-agee: unknown key (did you mean "max-age"?)'),
    (
        "[queue]\nmax-connections = 0\n",
        "FILE: queue.max-connections: expected an integer from 1 to 10000, found 0 (an integer)",
    ),
    (
        '[queue.dns]\nnameservers = ["localhost:53"]\n',
        "FILE: queue.dns.nameservers[0]: expected an IP address with an optional port, such as "
        '"127.0.0.1:5353", found "localhost:53" (a string)',
    ),
    (
        '[queue.relay]\nhost = "smtp.example"\nuser = "me"\n',
        "FILE: queue.relay: user and password must be given together",
    ),
    (
        '[queue.relay]\nhost = "smtp.example"\ntls = "none"\nuser = "me"\npassword = "x"\n',
        'FILE: queue.relay: a password is only sent over verified TLS: set tls to "starttls" or'
        ' "implicit"',
    ),
    (
        '[queue.route."corp.example"]\nhost = "a b"\n',
        'FILE: queue.route."corp.example".host: expected a host name or an IP address, found "a b"'
        " (a string)",
    ),
    (
        '[queue.route."corp.example"]\nhost = "h.example"\ntls = "yes"\n',
        'FILE: queue.route."corp.example".tls: expected one of "none", "opportunistic", '
        '"starttls", "implicit", found "yes" (a string)',
    ),
    (
        '[queue.route."corp.example"]\nport = 25\n',
        'FILE: queue.route."corp.example".host: is required',
    ),
    (
        '[dkim."example.com"]\nprivate-key = "k.pem"\n',
        'FILE: dkim."example.com".selector: is required',
    ),
    (
        '[dkim."bad domain"]\nselector = "s"\nprivate-key = "k.pem"\n',
        'FILE: dkim."bad domain": expected a host name such as mail.example.com, found '
        '"bad domain" (a string)',
    ),
    ("[dkm]\n", 'FILE: dkm: unknown key (did you mean "dkim"?)'),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_check_config_names_the_key_and_what_was_expected(tmp_path, capsys, text, message):
    code, err = check(tmp_path, capsys, GOOD + text)
    assert code == 1
    assert err.splitlines() == [message, "FILE: 1 error"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_nameserver_forms(raw, expected):
    assert parse_nameserver(raw) == expected


@pytest.mark.parametrize("raw", ["127.0.0.1:0", "127.0.0.1:70000", "dns.example", 53])
def test_bad_nameservers(raw):
    with pytest.raises(ValueError):
        parse_nameserver(raw)


def test_host_forms():
    assert parse_host("[2001:DB8::1]") == "2001:db8::1"
    assert parse_host("Smtp.Example") == "smtp.example"
