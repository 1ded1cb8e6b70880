"""curl against the HTTP API: what a person or a script does from a shell."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import require_tool
from tests.support.http import ADMIN, USER, http_listener, start_http

pytestmark = pytest.mark.interop


@pytest.fixture
def setup(start_server, server_cert):
    cert, key = server_cert
    https = http_listener(
        "https",
        **{"tls.implicit": "true", "tls.certificate": f'"{cert}"', "tls.private-key": f'"{key}"'},
    )
    server = start_http(start_server, extra=https)
    return server, f"http://127.0.0.1:{server.address('http')[1]}"


def curl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [require_tool("curl"), "-sS", "--max-time", "20", *args],
        input=input,
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_health_and_head(setup):
    _, url = setup
    result = curl("--fail", f"{url}/healthz")
    assert result.returncode == 0 and json.loads(result.stdout) == {"status": "ok"}
    body = curl(f"{url}/readyz").stdout
    head = curl("-I", f"{url}/readyz")
    assert head.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"content-length: {len(body)}\r\n".encode() in head.stdout


def test_admin_api_with_basic_credentials(setup):
    _, url = setup
    result = curl("--fail", "-u", ":".join(ADMIN), f"{url}/api/listeners")
    assert result.returncode == 0
    assert {item["id"] for item in json.loads(result.stdout)["listeners"]} == {"http", "https"}
    created = curl(
        "--fail",
        "-u",
        ":".join(ADMIN),
        "--json",
        json.dumps({"address": "curl@example.test", "password": "curl-password"}),
        f"{url}/api/accounts",
    )
    assert created.returncode == 0 and json.loads(created.stdout)["address"] == "curl@example.test"
    refused = curl("--fail", "-u", ":".join(USER), f"{url}/api/accounts")
    assert refused.returncode == 22  # curl's "HTTP error" exit status: the 403
    anonymous = curl("-w", "%{http_code}", "-o", "/dev/null", f"{url}/api/accounts")
    assert anonymous.stdout == b"401"


def test_injection_raw_and_chunked(setup):
    _, url = setup
    message = b"From: a@remote.test\nSubject: from curl\n\nhello\n"
    result = curl(
        "--fail",
        "-u",
        ":".join(ADMIN),
        "-H",
        "Content-Type: message/rfc822",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "@-",
        f"{url}/api/inject?sender=a@remote.test&recipient={USER[0]}",
        input=message,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["accepted"] == 1 and answer["results"][0]["code"] == 250
    too_big = curl(
        "-u",
        ":".join(ADMIN),
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "-H",
        "Content-Type: message/rfc822",
        "--data-binary",
        "@-",
        f"{url}/api/inject?sender=a@remote.test&recipient={USER[0]}",
        input=b"Subject: x\n\n" + b"x" * (26 * 1024 * 1024),
    )
    assert too_big.stdout == b"413"


def test_https_with_the_test_ca(setup, ca, tmp_path):
    server, _ = setup
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = server.address("https")[1]
    result = curl(
        "--fail",
        "--cacert",
        str(ca_file),
        "-u",
        ":".join(ADMIN),
        f"https://localhost:{port}/metrics",
    )
    assert result.returncode == 0, result.stderr
    assert b"stalwart_connections_accepted_total" in result.stdout
