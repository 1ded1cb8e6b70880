"""The container image, built with podman from deploy/Dockerfile and run for real.

The base image (debian:bookworm-slim) is pulled when a registry answers, and otherwise made
from Debian's packages with mmdebstrap and tagged as the Dockerfile's FROM. In the running
container, every listener is reached through published ports (mail delivered with swaks and
read back over IMAPS, ManageSieve, the HTTP API with credentials from the host), the
HEALTHCHECK reports healthy, `podman stop` ends it in the grace period with the queue kept,
a restart and an upgrade (an image of an older commit, schema v7, then this tree's) keep every
message, and it binds low ports as uid 10001 on the default network and on --network=host.

Heavy tier: the first run builds the base and the image (about five minutes on two cores);
podman's storage keeps both, so later runs build from cache.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.test_deploy import reach, unverified
from tests.support.podman import Podman, PodmanError, container, from_image, wait_for_log

pytestmark = [pytest.mark.heavy, pytest.mark.interop, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/stalwart-py:test"
# The last commit before migration _v8 (Sieve :global): its image writes a schema v7 database
# that this tree's image must migrate without losing a message.
OLD_COMMIT = "e4cdf0a924d8dd29723d24a21f1ca75133cdced6"
HOSTNAME = "mail.example.test"
USER, PASSWORD = "user@example.test", "a container password"
ADMIN_PASSWORD = "an admin password"
GRACE = 30
# Every TCP listener of config/config.toml and its port in the container.
PORTS = {
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "imap": 143,
    "imaps": 993,
    "managesieve": 4190,
    "http": 8080,
    "pop3": 110,
    "pop3s": 995,
}
PROTOCOL = {"submission": "smtp", "submissions": "smtp", "imaps": "imap", "pop3s": "pop3"}
IMPLICIT_TLS = {"submissions", "imaps", "pop3s"}
ENV = [
    "--env",
    f"STALWART_HOSTNAME={HOSTNAME}",
    "--env",
    f"STALWART_ADMIN_PASSWORD={ADMIN_PASSWORD}",
    # No name server answers: mail for other domains stays queued (deferred), which the
    # stop/restart test needs, and the inbound checks fail fast instead of waiting.
    "--env",
    'STALWART__RESOLVER__NAMESERVERS=["127.0.0.1:1"]',
]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    require_tool("runc")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n')
    return Podman(require_tool("podman"), conf)


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None and os.environ.get("CI") == "true":
        mmdebstrap = require_tool("mmdebstrap")
    podman.ensure_base(from_image(), mmdebstrap)
    podman.build(ROOT, IMAGE)
    return IMAGE


@pytest.fixture(scope="module")
def old_image(podman: Podman, image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """This Dockerfile on the tree of OLD_COMMIT (kept by tag: a commit never changes)."""
    tag = f"localhost/stalwart-py:{OLD_COMMIT[:12]}"
    if podman.image_exists(tag):
        return tag
    tree = tmp_path_factory.mktemp("old-tree")
    archive = tree / "tree.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--output", str(archive), OLD_COMMIT], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    podman.build(tree, tag)
    return tag


@pytest.fixture
def volumes(podman: Podman) -> Iterator[list[str]]:
    names = [f"stalwart-test-{what}-{os.getpid()}-{time.monotonic_ns()}" for what in ("d", "c")]
    yield [
        "--volume",
        f"{names[0]}:/var/lib/stalwart-py",
        "--volume",
        f"{names[1]}:/etc/stalwart-py",
    ]
    for name in names:
        podman.run("volume", "rm", "--force", name, check=False)


def published() -> list[str]:
    return [arg for port in PORTS.values() for arg in ("--publish", f"127.0.0.1::{port}")]


def cli(podman: Podman, name: str, *args: str, stdin: str | None = None) -> str:
    return podman.run("exec", "--interactive", name, "stalwart-py", *args, stdin=stdin).stdout


def add_user(podman: Podman, name: str) -> None:
    cli(podman, name, "domain", "add", "example.test")
    cli(podman, name, "account", "add", USER, "--password-file", "-", stdin=PASSWORD)


def swaks(*args: str) -> str:
    result = subprocess.run(
        [require_tool("swaks"), "--from", "sender@remote.test", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def deliver(podman: Podman, name: str, subject: str) -> None:
    host, port = podman.port(name, 25)
    swaks("--server", f"{host}:{port}", "--to", USER, "--h-Subject", subject)


def subjects(podman: Podman, name: str) -> list[str]:
    """The Subject of every message in the user's INBOX, read over IMAPS."""
    host, port = podman.port(name, 993)
    with imaplib.IMAP4_SSL(host, port, ssl_context=unverified(), timeout=30) as imap:
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return sorted(
        part[1].decode().split(":", 1)[1].strip() for part in data if isinstance(part, tuple)
    )


def queued(podman: Podman, name: str) -> str:
    return cli(podman, name, "queue", "list").strip().splitlines()[-1]


def stop(podman: Podman, name: str) -> float:
    started = time.monotonic()
    podman.run("stop", "--time", str(GRACE), name, timeout=GRACE + 30)
    elapsed = time.monotonic() - started
    state = podman.inspect(name)["State"]
    assert state["ExitCode"] == 0, podman.run("logs", name).stderr
    return elapsed


def test_every_listener_answers_through_published_ports(podman, image, volumes):
    with container(podman, image, *ENV, *volumes, *published()) as name:
        wait_for_log(podman, name, "ready:")
        assert podman.run("healthcheck", "run", name, check=False).returncode == 0
        # Non-root: the server is uid 10001, and yet bound 25, 143, 465, 587 and 993.
        status = podman.run("exec", name, "cat", "/proc/1/status").stdout
        assert "\nUid:\t10001\t10001\t10001\t10001\n" in status
        for listener, port in PORTS.items():
            address = podman.port(name, port)
            reach(PROTOCOL.get(listener, listener), address, listener in IMPLICIT_TLS)

        add_user(podman, name)
        deliver(podman, name, "through the published port")
        assert subjects(podman, name) == ["through the published port"]

        # The admin API with credentials over plain HTTP from the host: the request comes
        # from podman's network (10.88.0.0/16), which the shipped configuration trusts.
        host, port = podman.port(name, 8080)
        token = b64encode(f"admin@{HOSTNAME}:{ADMIN_PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"http://{host}:{port}/api/accounts", headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            assert USER in answer.read().decode()

        # ManageSieve: a script uploaded and listed with sieve-connect (STARTTLS, AUTH).
        host, port = podman.port(name, 4190)
        script = Path(os.environ.get("TMPDIR", "/tmp")) / f"container-{os.getpid()}.sieve"
        script.write_text("keep;\n")
        try:
            for action in (["--upload", "--localsieve", str(script), "--remotesieve", "k"], []):
                read, write = os.pipe()
                os.write(write, PASSWORD.encode() + b"\n")
                os.close(write)
                result = subprocess.run(
                    [require_tool("sieve-connect"), "--server", host, "--port", str(port),
                     "--user", USER, "--passwordfd", str(read), "--notlsverify",
                     *(action or ["--list"])],
                    capture_output=True, text=True, timeout=60, pass_fds=(read,),
                )  # fmt: skip
                os.close(read)
                assert result.returncode == 0, result.stdout + result.stderr
            assert result.stdout.split() == ['"k"']
        finally:
            script.unlink()


def test_stop_restart_and_upgrade_keep_every_message(podman, image, old_image, volumes):
    with container(podman, old_image, *ENV, *volumes, *published()) as name:
        wait_for_log(podman, name, "ready:")
        add_user(podman, name)
        deliver(podman, name, "before the upgrade")
        stop(podman, name)

    with container(podman, image, *ENV, *volumes, *published()) as name:
        wait_for_log(podman, name, "ready:")
        assert subjects(podman, name) == ["before the upgrade"]
        deliver(podman, name, "after the upgrade")
        # Mail for elsewhere, which no name server can route: it waits in the queue.
        host, port = podman.port(name, 587)
        swaks(
            "--server", f"{host}:{port}", "--tls", "--auth", "PLAIN", "--auth-user", USER,
            "--auth-password", PASSWORD, "--from", USER, "--to", "someone@elsewhere.test",
        )  # fmt: skip
        assert queued(podman, name) == "1 message(s) queued"

        elapsed = stop(podman, name)
        assert elapsed < GRACE, f"podman stop took {elapsed:.1f}s: SIGTERM did not end it"
        log = podman.run("logs", name).stderr + podman.run("logs", name).stdout
        assert "stopped accepting" in log

        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        podman.run("start", name)
        process_log = podman.run("logs", "--since", since, name)
        if "ready:" not in process_log.stdout + process_log.stderr:
            wait_for_log_since(podman, name, since)
        assert subjects(podman, name) == ["after the upgrade", "before the upgrade"]
        assert queued(podman, name) == "1 message(s) queued"


def wait_for_log_since(podman: Podman, name: str, since: str, timeout: float = 90) -> None:
    """Wait for the "ready:" of the start after ``since`` (the earlier one is in the log)."""
    process = subprocess.Popen(
        [podman.executable, "logs", "--follow", "--since", since, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=podman.env,
    )
    deadline = time.monotonic() + timeout
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "ready:" in line:
                return
            if time.monotonic() > deadline:
                break
        raise PodmanError(f"{name} did not report ready after a restart")
    finally:
        process.kill()
        process.wait()


def free_low_ports(count: int) -> list[int]:
    """Ports below 1024 free on the host's loopback (the tests run as root here)."""
    found = []
    for port in range(700, 1000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    pytest.skip("no free low ports on this host")


@pytest.mark.skipif(os.geteuid() != 0, reason="binding the host's low ports needs root")
def test_low_ports_as_non_root_on_the_host_network(podman, image, volumes):
    """--network=host: the container has the host's net.ipv4.ip_unprivileged_port_start, so
    only the interpreter's CAP_NET_BIND_SERVICE lets uid 10001 bind. Hardened the usual way
    (--cap-drop=ALL) it needs that one capability back, as deploy/README.md says."""
    ports = dict(zip(PORTS, free_low_ports(len(PORTS)), strict=True))
    binds = [
        arg
        for listener, port in ports.items()
        for arg in (
            "--env",
            f'STALWART__SERVER__LISTENER__{listener.upper()}__BIND="127.0.0.1:{port}"',
        )
    ]
    hardened = ["--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE"]
    with container(podman, image, *ENV, *volumes, *binds, *hardened, "--network=host") as name:
        wait_for_log(podman, name, "ready:")
        assert podman.run("healthcheck", "run", name, check=False).returncode == 0
        for listener, port in ports.items():
            reach(PROTOCOL.get(listener, listener), ("127.0.0.1", port), listener in IMPLICIT_TLS)


# The server's command run by an interpreter without the file capability (a copy of it).
PLAIN_SERVE = (
    'import sys; sys.path[:0] = ["/opt/stalwart-py/lib/python3.11/site-packages"]; '
    "from stalwart_py.cli import main; "
    'sys.exit(main(["serve", "--init-config", "/usr/share/stalwart-py/config.toml"]))'
)


def test_a_refused_bind_in_a_container_is_one_line(podman, image, volumes):
    """Without the file capability's effect (the server run by a plain interpreter copy,
    which carries no capability), port 25 is refused: one line that says what to do."""
    result = podman.run(
        "run", "--rm", *ENV, *volumes, "--network=host", "--entrypoint", "/bin/sh", image,
        "-c", f"cp /usr/bin/python3.11 /tmp/python && exec /tmp/python -c '{PLAIN_SERVE}'",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stalwart-py: cannot start: cannot bind 0.0.0.0:25: Permission denied")
    assert "CAP_NET_BIND_SERVICE" in last


def test_the_compose_file_validates_with_podman_compose():
    """`docker compose config`'s equivalent with podman's tooling: the file resolves (build
    context, Dockerfile, ports, volumes, secret) as the README's commands expect."""
    import yaml

    tool = Path(sys.executable).with_name("podman-compose")
    executable = str(tool) if tool.exists() else require_tool("podman-compose")
    result = subprocess.run(
        [executable, "-f", str(ROOT / "deploy" / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT / "deploy",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]["stalwart"]
    assert Path(resolved["build"]["context"]).resolve() == ROOT
    assert resolved["build"]["dockerfile"] == "deploy/Dockerfile"
    written = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert resolved["ports"] == written["services"]["stalwart"]["ports"]
    assert {str(port) for port in PORTS.values()} <= {
        str(port).rsplit(":", 1)[-1] for port in resolved["ports"]
    }
    mounted = {volume.split(":")[1] for volume in resolved["volumes"]}
    assert {"/var/lib/stalwart-py", "/etc/stalwart-py"} <= mounted


def test_the_cluster_profile_resolves_with_podman_compose():
    """The cluster profile (deploy/README.md): node2 is node1 (a YAML merge) with volumes of its
    own, after node1 is healthy."""
    import yaml

    tool = Path(sys.executable).with_name("podman-compose")
    executable = str(tool) if tool.exists() else require_tool("podman-compose")
    result = subprocess.run(
        [executable, "-f", str(ROOT / "deploy" / "compose.yaml"), "--profile", "cluster", "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT / "deploy",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"postgres", "s3", "s3-bucket", "node1", "node2", "haproxy"} <= set(services)
    node1, node2 = services["node1"], services["node2"]
    assert node2["environment"] == node1["environment"]
    assert node2["environment"]["STALWART__STORAGE__BACKEND"] == "postgresql"
    assert node2["build"]["args"] == ["EXTRAS=postgresql s3"]  # as podman-compose lists them
    assert {v.split(":")[0] for v in node2["volumes"]} == {
        "node2-data",
        "node2-config",
        "certificates",
    }
    assert node2["depends_on"] == {"node1": {"condition": "service_healthy"}}
