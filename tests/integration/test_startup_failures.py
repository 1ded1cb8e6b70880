"""Every way a start fails prints one line naming the problem and what to do, never a
traceback: the same in a container (tests/interop/test_container.py) as here.

A start that could not bind port 25 as uid 10001 once printed an ExceptionGroup traceback
(the StartupError was raised inside ``except*``, which wraps it in a group)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.servers import write_config

ROOT = Path(__file__).resolve().parents[2]

HTTP = """
[server]
hostname = "mx.example.test"

[server.listener.http]
bind = "{bind}"
protocol = "http"
"""


def serve(config: Path, *prefix: str) -> list[str]:
    """Run ``serve`` (expected to fail) and return its stderr lines; the administrator's
    password is given so the first start prints no announcement."""
    env = {**os.environ, "STALWART_ADMIN_PASSWORD": "not shown"}
    command = [*prefix, sys.executable, "-m", "stalwart_py", "serve", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # Log lines before the failure are fine; the verdict is the last line, and only one.
    assert lines, "no message at all"
    return lines


def test_a_refused_bind_says_how_to_allow_low_ports(tmp_path):
    """EACCES on a port below 1024: as root, without CAP_NET_BIND_SERVICE (setpriv drops it
    from the bounding set), which is what uid 10001 in a container meets."""
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to drop the capability as root")
        prefix = (setpriv, "--bounding-set", "-net_bind_service", "--inh-caps", "-net_bind_service")
    else:
        unprivileged = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()
        if int(unprivileged) <= 1:
            pytest.skip("this machine lets anyone bind low ports")
    lines = serve(write_config(tmp_path, HTTP.format(bind="127.0.0.1:1")), *prefix)
    assert lines[-1].startswith("stalwart-py: cannot start: cannot bind 127.0.0.1:1: ")
    assert "Permission denied" in lines[-1]
    assert "CAP_NET_BIND_SERVICE" in lines[-1] and "setcap" in lines[-1]


def test_an_address_in_use_names_the_fix(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        host, port = taken.getsockname()
        lines = serve(write_config(tmp_path, HTTP.format(bind=f"{host}:{port}")))
    assert lines[-1].startswith(f"stalwart-py: cannot start: cannot bind {host}:{port}: ")
    assert "Address already in use (another program listens there" in lines[-1]


def test_an_unreadable_configuration(tmp_path):
    config = tmp_path / "config.toml"
    config.mkdir()  # unreadable even for root, unlike a file without read permission
    lines = serve(config)
    assert lines == [f"{config}: cannot read: Is a directory"]


def test_an_unwritable_data_directory(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    text = f'[storage]\ndata-dir = "{tmp_path / "file" / "data"}"\n' + HTTP.format(
        bind="127.0.0.1:0"
    )
    lines = serve(write_config(tmp_path, text))
    assert lines[-1].startswith(
        f"stalwart-py: cannot start: cannot create the data directory {tmp_path / 'file'}"
    )
    assert f"writable by the user the server runs as (uid {os.getuid()})" in lines[-1]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_bad_certificate(tmp_path, workers):
    """With workers, each one meets the certificate as it starts (they start side by side once
    the first has migrated): the supervisor says it once."""
    pem = tmp_path / "broken.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    text = HTTP.format(bind="127.0.0.1:0").replace(
        "[server]\n", f"[server]\nworkers = {workers}\n"
    ) + (f'\n[server.tls]\ncertificate = "{pem}"\nprivate-key = "{pem}"\n')
    lines = serve(write_config(tmp_path, text))
    assert lines[-1].startswith("stalwart-py: cannot start: server.listener.http.tls: ")
    assert f"cannot use certificate {pem}" in lines[-1]
    assert sum(line.startswith("stalwart-py: cannot start") for line in lines) == 1, lines


def test_the_shipped_configuration_refused_port_25_is_one_line():
    """The container's case: config/config.toml (every listener, the queue, the control
    socket in one task group) run as uid 10001, refused port 25. This printed an
    ExceptionGroup traceback (as root without the capability it did not)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the server as uid 10001 (setpriv)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed")
    as_user = [setpriv, "--reuid", "10001", "--regid", "10001", "--clear-groups"]
    probe = subprocess.run([*as_user, sys.executable, "-c", "import stalwart_py"], cwd=ROOT)
    if probe.returncode != 0:
        pytest.skip("uid 10001 cannot read this checkout or its interpreter")
    directory = Path(tempfile.mkdtemp(prefix="startup-", dir="/tmp"))
    try:
        directory.chmod(0o777)
        env = {
            **os.environ,
            "STALWART__STORAGE__DATA_DIR": str(directory / "data"),
            "STALWART__SERVER__LISTENER__LMTP__BIND": str(directory / "lmtp.sock"),
        }
        command = [sys.executable, "-m", "stalwart_py", "serve", "--config"]
        result = subprocess.run(
            [*as_user, *command, str(ROOT / "config" / "config.toml")],
            capture_output=True, text=True, env=env, timeout=60, cwd=ROOT,
        )  # fmt: skip
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stalwart-py: cannot start: cannot bind 0.0.0.0:25: Permission denied")
