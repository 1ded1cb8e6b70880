"""Schemathesis against the admin API of a real server: every operation of the OpenAPI
document the server serves, called as an administrator with data generated from the
document (valid and invalid), one by one (coverage and fuzzing phases) and in sequences
that feed one answer into the next request (the stateful phase).

A failure is any answer that the document does not allow: a 5xx, an undocumented status or
media type, a body that does not match its schema, a valid request refused or an invalid one
accepted, a wrong ``Allow`` header. Its own checks are run as configured in
``tests/support/schemathesis.toml``, which says where a valid request may still be refused
(a domain that is not local, for one); its hooks (``tests/support/schemathesis_hooks.py``)
keep the run from disabling its own listener or changing its own password.

Deterministic and bounded: schemathesis's deterministic generation (a fixed seed), one worker,
a fixed number of examples per operation, and a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.http import ADMIN, USER, start_http

SUPPORT = Path(__file__).resolve().parents[1] / "support"
ROOT = SUPPORT.parents[1]
MAX_EXAMPLES = 80  # per operation and phase: about a minute in all on the project's machine
MAX_SECONDS = 240  # a run this slow is a failure too
SPARE = '[server.listener.smtp]\nbind = "127.0.0.1:0"\nprotocol = "smtp"\n\n'
# GET /api/dns/{domain}?check=true asks DNS: a closed loopback port fails at once, where the
# system's resolver may be unreachable from the test machine and wait out every timeout.
RESOLVER = '[resolver]\nnameservers = ["127.0.0.1:9"]\ntimeout = "1s"\nattempts = 1\n\n'


@pytest.mark.heavy
@pytest.mark.timeout(MAX_SECONDS + 30)
def test_schemathesis_finds_nothing_wrong_with_the_api(start_server, tmp_path):
    server = start_http(start_server, extra=SPARE + RESOLVER)
    host, port = server.address("http")
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file"),
        str(SUPPORT / "schemathesis.toml"),
        *("run", f"http://{host}:{port}/api/openapi.json"),
        *("--auth", f"{ADMIN[0]}:{ADMIN[1]}"),
        *("--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"),
        *("--max-examples", str(MAX_EXAMPLES), "--generation-deterministic"),
        *("--workers", "1", "--request-timeout", "20"),
        *("--no-color", "--max-failures", "20"),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        "STALWART_TEST_LISTENER": "http",
        "STALWART_TEST_SPARE_LISTENER": "smtp",
        "STALWART_TEST_ADMIN": ADMIN[0],
        "STALWART_TEST_SPARE_ACCOUNT": USER[0],
    }
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=tmp_path,  # where schemathesis keeps its files
        env=env,
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    phases = [line for line in result.stdout.splitlines() if "(in " in line or "Scenarios" in line]
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    print(f"schemathesis: {elapsed:.1f}s\n" + "\n".join(phases) + f"\n{summary}")
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
