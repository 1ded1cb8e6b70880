"""Podman for the container tier (tests/interop/test_container.py): the engine's settings, the
base image (pulled, or made from Debian's packages with mmdebstrap), image builds and running
containers.

Podman keeps images in its own storage (/var/lib/containers as root), so the base image and
the build's layers outlive a test run: a second run builds from cache. The settings these
machines need (no systemd cgroup manager, no default ulimits a nested container cannot set)
go into a containers.conf of our own, named by CONTAINERS_CONF.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

CONTAINERS_CONF = """\
# Written by tests/support/podman.py: what podman needs on machines without systemd.
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
"""

# The base is as Debian's own debian:bookworm-slim is made: the minbase variant without
# documentation, manual pages and translations.
MMDEBSTRAP_OPTIONS = [
    "--variant=minbase",
    "--format=tar",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
]


class PodmanError(AssertionError):
    """A podman command failed; the message carries its output."""


@dataclass
class Podman:
    """The podman command with our containers.conf; ``run`` raises PodmanError on failure."""

    executable: str
    conf: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.executable, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            input=stdin,
        )
        if check and result.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0

    def ensure_base(self, name: str, mmdebstrap: str | None, timeout: float = 900) -> str:
        """The base image: already here, pulled, or made from Debian's packages and tagged
        ``name`` (the Dockerfile's FROM). Returns how it was obtained."""
        if self.image_exists(name):
            return "cached"
        if self.run("pull", "--quiet", name, check=False, timeout=300).returncode == 0:
            return "pulled"
        if mmdebstrap is None:
            raise PodmanError(f"{name} cannot be pulled and mmdebstrap is not installed")
        suite = name.rsplit(":", 1)[1].split("-", 1)[0]  # bookworm-slim -> bookworm
        tarball = Path(os.environ.get("TMPDIR", "/tmp")) / f"stalwart-base-{os.getpid()}.tar"
        try:
            subprocess.run(
                [mmdebstrap, *MMDEBSTRAP_OPTIONS, suite, str(tarball)],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self.run("import", "--change", 'CMD ["bash"]', str(tarball), name, timeout=300)
        finally:
            tarball.unlink(missing_ok=True)
        return "mmdebstrap"

    def build(self, context: Path, tag: str, timeout: float = 1200) -> None:
        """Build deploy/Dockerfile on ``context``. Docker format, as OCI images drop
        HEALTHCHECK; the host's CA bundle goes in as the ``cacert`` secret, so pip works
        behind an intercepting proxy."""
        args = ["build", "--format", "docker", "--file", str(DOCKERFILE), "--tag", tag]
        bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
        if bundle and Path(bundle).is_file():
            args += ["--secret", f"id=cacert,src={bundle}"]
        self.run(*args, str(context), timeout=timeout)

    def port(self, container: str, port: int) -> tuple[str, int]:
        """The host address a container port is published on."""
        text = self.run("port", container, f"{port}/tcp").stdout.split()[0]
        host, _, number = text.rpartition(":")
        return host.strip("[]"), int(number)

    def inspect(self, container: str) -> dict:
        return json.loads(self.run("container", "inspect", container).stdout)[0]


def from_image(dockerfile: Path = DOCKERFILE) -> str:
    """The Dockerfile's base image, as podman names it."""
    name = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE).group(1)
    return name if "/" in name else f"docker.io/library/{name}"


@contextmanager
def container(
    podman: Podman, image: str, *args: str, command: tuple[str, ...] = ()
) -> Iterator[str]:
    """A detached container, removed at the end (its named volumes stay)."""
    name = f"stalwart-test-{os.getpid()}-{time.monotonic_ns()}"
    podman.run("run", "--detach", "--name", name, *args, image, *command)
    try:
        yield name
    finally:
        podman.run("rm", "--force", "--time", "0", name, check=False)


def wait_for_log(podman: Podman, container: str, marker: str, timeout: float = 90) -> str:
    """Follow the container's log until a line contains ``marker``; the log so far."""
    process = subprocess.Popen(
        [podman.executable, "logs", "--follow", container],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=podman.env,
    )
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                return "".join(seen)
            if time.monotonic() > deadline:
                break
        raise PodmanError(f"no {marker!r} from {container}:\n{''.join(seen)}")
    finally:
        process.kill()
        process.wait()
