"""``[storage.blob]``: where message bodies live (see ``stalwart_py/store/blobstore``).

``database`` keeps each body in the metadata database beside its row (the default, and what a
personal server wants: one file to back up). ``filesystem`` writes each body to a file of its
own under ``directory``; ``s3`` to an object in an S3-compatible bucket, so that several nodes
sharing one PostgreSQL database also share the bodies. Either way the database keeps what
refers to a body and how often; an orphan sweep deletes the bodies nothing refers to.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from stalwart_py.config.types import Duration, Size


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class BlobSettings:
    """``[storage.blob]``: message bodies in the database, in files or in an S3 bucket."""

    backend: Literal["database", "filesystem", "s3"] = "database"  # where bodies are written
    # filesystem: the directory of the bodies; unset: <data-dir>/blobs
    directory: Path | None = None
    # s3: the service's URL, https://host[:port] (http:// only for a server on loopback)
    endpoint: str = ""
    bucket: str = ""  # s3: the bucket, which must exist
    region: str = "us-east-1"  # s3: the region requests are signed for
    access_key: str = ""  # s3: the access key id
    secret_key: str = ""  # s3: the secret access key; or secret-key-file
    secret_key_file: Path | None = None  # s3: a file holding the secret access key
    prefix: str = ""  # s3: put before every object name ("mail/" keeps them in a folder)
    # s3: http:// to a host that is not loopback too, for a network no one else is on (the
    # containers' own, deploy/compose.yaml's cluster); bodies then cross it in clear
    allow_plaintext: bool = False
    ca_file: Path | None = None  # s3: trust anchors for the endpoint's TLS; default: the system's
    connect_timeout: Duration = 10.0  # s3: for connecting to the endpoint
    timeout: Duration = 60.0  # s3: for one request once connected (a body up or down)
    # Bodies read from the backend kept in memory (they never change), in bytes; 0: none
    cache_size: Size = 32 * 1024 * 1024
    sweep_interval: Duration = 3600.0  # how often the orphan sweep runs (in one process)
    # A body is swept only once nothing has written it for this long (so that one being
    # written for a delivery is left alone; correctness does not rest on it, see sweep.py)
    grace_period: Duration = 3600.0

    def __post_init__(self) -> None:
        if self.backend != "s3":
            return
        url = urlsplit(self.endpoint)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError('backend = "s3" needs endpoint = "https://host[:port]"')
        if url.scheme == "http" and not _is_loopback(url.hostname) and not self.allow_plaintext:
            raise ValueError(
                f"endpoint {self.endpoint!r}: plain http only to a server on this machine"
                " (loopback) or with allow-plaintext = true; use https"
            )
        if not self.bucket:
            raise ValueError('backend = "s3" needs bucket')
        if not self.access_key:
            raise ValueError('backend = "s3" needs access-key')
        if bool(self.secret_key) == (self.secret_key_file is not None):
            raise ValueError('backend = "s3" needs exactly one of secret-key and secret-key-file')
