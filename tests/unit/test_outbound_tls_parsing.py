"""The texts of outbound TLS policies: MTA-STS TXT records and policies (RFC 8461 3.1, 3.2,
4.1) and TLS-RPT records (RFC 8460 3)."""

from __future__ import annotations

import pytest

from stalwart_py.queue.mta_sts import PolicyError, mx_matches, parse_policy, parse_txt
from stalwart_py.queue.tlsrpt import parse_rua


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mx.example.com", "mx.example.com", True),
        ("mx.example.com", "MX.Example.COM.", True),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("*.example.com", "xexample.com", False),
        ("mx.example.com", "mx.example.net", False),
    ],
)
def test_mx_patterns(pattern, host, expected):
    assert mx_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=STSv1; id=abc", "v=STSv1; id=def"], None),  # two records: none (3.1)
        (["v=spf1 -all", "v=STSv1; id=abc;"], "abc"),
        (["v=STSv1; id=not-alnum"], None),
        (["v=STSv1; id=" + "a" * 33], None),
        (["v=STSv10; id=abc"], None),
        ([], None),
    ],
)
def test_txt_records(records, expected):
    assert parse_txt(records) == expected


def test_policy_parsed():
    text = (
        "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n"
    )
    policy = parse_policy(text, "example.com", "1")
    assert (policy.mode, policy.mx, policy.max_age) == (
        "enforce",
        ("mail.example.com", "*.example.net"),
        86400,
    )
    assert policy.allows("x.example.net") and not policy.allows("example.net")
    assert policy.lines()[0] == "version: STSv1"


@pytest.mark.parametrize(
    "text",
    [
        "mode: enforce\nmx: a.test\nmax_age: 1\n",  # no version
        "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\n",  # enforce without mx
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n",
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
        "version: STSv1\nmode: enforce\nmx: a.test\n",
        "<html>nothing</html>",
    ],
)
def test_invalid_policies(text):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "example.com", "1")
    assert caught.value.result_type == "sts-policy-invalid"


def test_none_mode_needs_no_mx_and_unknown_keys_are_ignored():
    policy = parse_policy("version: STSv1\r\nmode: none\r\nmax_age: 0\r\nx-new: 1\r\n", "e.t", "1")
    assert policy.mode == "none" and policy.mx == ()


def test_tlsrpt_rua():
    record = (
        "v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/x,mailto:tls%2Breports@c.test"
    )
    assert parse_rua([record]) == ["tls@example.com", "tls+reports@c.test"]
    assert parse_rua(["v=TLSRPTv1;rua=mailto:x@y.test", "v=TLSRPTv1;rua=mailto:z@y.test"]) == []
    assert parse_rua(["v=spf1"]) == []


def test_configuration_keys(tmp_path):
    from stalwart_py.config import ConfigError, parse_config

    text = """
[storage]
data-dir = "/tmp/unused"
[queue.mta-sts]
port = 8443
timeout = "5s"
[queue.dane]
enable = false
[report.tls]
from = "tls@example.com"
org-name = "Example"
"""
    config = parse_config(text, tmp_path / "c.toml", {})
    assert (config.queue.mta_sts.port, config.queue.mta_sts.timeout) == (8443, 5.0)
    assert config.queue.dane.enable is False
    assert (config.report.tls.sender, config.report.tls.org_name) == ("tls@example.com", "Example")
    with pytest.raises(ConfigError, match=r"report\.tls\.frm"):
        parse_config(text.replace("from =", "frm ="), tmp_path / "c.toml", {})
