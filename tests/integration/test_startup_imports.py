"""A start imports only what a start needs (issue 21: under one second from ``serve`` to
every listener accepting).

What the first delivery, the first DNS lookup, the first ACME order or the first DKIM
signature needs is imported when it first happens: those modules (dnspython, dkimpy,
josepy, httpx, the outbound SMTP client, Sieve...) were a large part of every start's
imports. This runs the real ``stalwart-py serve`` on the shipped local configuration (every
listener, TLS ones included) in a fresh interpreter and reads ``sys.modules`` when it
announces ``ready``; a new top-level import of one of them fails it, naming the module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from stalwart_py.testing.workers import with_workers

ROOT = Path(__file__).resolve().parents[2]

# Runs `serve` with --notify-fd; a thread waits for the ready event on the pipe and prints
# the modules loaded by then (the server is in its event loop, every listener accepting).
PROBE = """
import json, os, sys, threading
read_fd, write_fd = os.pipe()

def report_when_ready():
    buffer = b""
    while b'"event": "ready"' not in buffer:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            os._exit(3)
        buffer += chunk
    print(json.dumps(sorted(sys.modules)), flush=True)
    os._exit(0)

threading.Thread(target=report_when_ready, daemon=True).start()
from stalwart_py.cli import main
sys.exit(main(["serve", "--config", sys.argv[1], "--notify-fd", str(write_fd)]))
"""

# Loaded on first use, never by a start (the module that needs each, and when).
NOT_AT_START = {
    "dns.resolver": "stalwart_py.resolver, on the first lookup",
    "dkim": "stalwart_py.queue.dkim, on the first signature or key",
    "nacl": "dkimpy's ed25519, with dkim",
    "cryptography.x509": "stalwart_py.tls / certificates, when a certificate is made or read",
    "h11": "protocols.http.server on the first HTTP connection, queue.mta_sts on a fetch",
    "protocols.pop3.session": "protocols.pop3, on the first POP3 connection",
    "stalwart_py.queue.session": "stalwart_py.queue.manager, on the first remote delivery",
    "stalwart_py.queue.attempts": "stalwart_py.queue.manager, on the first job",
    "stalwart_py.junk.tokens": "stalwart_py.junk.filter, on the first message classified",
    "stalwart_py.mime.parser": "stalwart_py.mime, on the first message parsed",
    "josepy": "stalwart_py.acme, on the first order",
    "httpx": "stalwart_py.acme.client, on the first order",
    "stalwart_py.acme.client": "stalwart_py.acme.manager, on the first order",
    "stalwart_py.acme.challenges": "stalwart_py.acme.manager, on the first order",
    "jinja2": "protocols.http.web.render, with the HTTP connection loop (the web pages)",
    "segno": "protocols.http.web.account.two_factor, with the web pages",
}


def loaded_at_ready(tmp_path: Path) -> set[str]:
    text = (ROOT / "config" / "local.toml").read_text()
    text = re.sub(r'"127\.0\.0\.1:\d+"', '"127.0.0.1:0"', text)
    text = re.sub(r'data-dir = "[^"]*"', f'data-dir = "{tmp_path / "var"}"', text)
    # One process: with workers the supervisor would report its own modules, not a worker's
    # (local.toml says so already; kept should it change).
    text = with_workers(text, 1)
    assert tomllib.loads(text)["server"]["workers"] == 1
    config = tmp_path / "local.toml"
    config.write_text(text)
    env = {**os.environ, "STALWART_ADMIN_PASSWORD": "not shown"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_a_start_leaves_first_use_modules_unimported(tmp_path):
    loaded_at_ready(tmp_path)  # the first start makes the self-signed certificate
    loaded = loaded_at_ready(tmp_path)
    assert "stalwart_py.listeners" in loaded and "protocols.smtp" in loaded  # it did start
    for name in NOT_AT_START:  # each name is real: a typo would make the check pass vacuously
        assert importlib.util.find_spec(name) is not None, name
    early = {name: why for name, why in NOT_AT_START.items() if name in loaded}
    assert not early, f"imported by a start, though only needed later: {early}"
