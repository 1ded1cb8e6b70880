"""Requests per second of GET /healthz and POST /api/inject with keep-alive, 1 and 32 concurrent
clients: stalwart-py's HTTP loop side by side with uvicorn serving the very same application.

    .venv/bin/pip install uvicorn        # or: pip install -e '.[bench]'
    apt-get install wrk                  # the load generator (C, keep-alive)
    .venv/bin/python bench/http_bench.py [--duration 5] [--clients 1,32] [--profile FILE]

Both servers run as child processes on loopback, each with its own data directory, and both
run the same ``protocols.http.app.Application`` (routing, HTTP Basic with its cache, JSON
validation, MIME composition, the delivery pipeline into SQLite with fsync): what differs is
only the HTTP layer, ours (h11 over the listener registry's Connection, anyio on asyncio)
against uvicorn's (h11 over an asyncio Protocol; ``http="h11"``, ``loop="asyncio"``, so that
neither httptools nor uvloop is used). wrk drives both with the same requests. Every injected
message is delivered (stored durably) before its answer.

``--profile FILE`` runs our server under cProfile and writes its profile to FILE.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ADMIN = ("admin@bench.test", "bench-admin-password")
RECIPIENT = "bob@bench.test"
INJECTION = {
    "from": "Sender <sender@remote.test>",
    "to": [RECIPIENT],
    "subject": "bench",
    "text": "Hello from the benchmark.\n" * 20,
}
CONFIG = """
[server]
hostname = "bench.test"
[storage]
data-dir = "{data}"
[logging]
level = "warning"
[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
"""


def authorization() -> str:
    return "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()


# -- the uvicorn side: the same Application behind an ASGI adapter -----------------------------


def asgi_main(config_path: str) -> None:
    """Child process: serve the Application with uvicorn on a port of its own, which it
    writes to stdout once it listens."""
    import logging

    import uvicorn

    from protocols.http.app import Application
    from protocols.http.messages import Request, Session
    from protocols.http.settings import HttpSettings
    from stalwart_py.config import load_config
    from stalwart_py.connection import Address
    from stalwart_py.context import ServerContext
    from stalwart_py.store import create_store

    config = load_config(config_path, {"http": HttpSettings})
    application = Application()
    settings = HttpSettings()
    log = logging.LoggerAdapter(logging.getLogger("bench.asgi"), {"session": "asgi"})
    state: dict[str, ServerContext] = {}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    store = create_store(config.storage)
                    await store.open()
                    state["context"] = ServerContext(config, store)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["context"].store.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        host, port = scope["client"]
        session = Session(
            state["context"],
            settings,
            Address.from_sockaddr(socket.AF_INET, (host, port)),
            None,
            "asgi",
            "http",
            log,
        )
        request = Request.build(scope["method"], target, headers, body, session)
        response = await application.dispatch(request)
        out = [(b"content-length", str(len(response.body)).encode())]
        if response.content_type:
            out.append((b"content-type", response.content_type.encode()))
        out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": response.body})

    server = uvicorn.Server(
        uvicorn.Config(
            app, http="h11", loop="asyncio", lifespan="on", log_level="warning", access_log=False
        )
    )
    # proto IPPROTO_TCP, as uvicorn's own bind would make it: asyncio sets TCP_NODELAY only on
    # connections of such a socket (else Nagle holds each response's body for 40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])


# -- running both ----------------------------------------------------------------------------


def start_ours(directory: Path, profile: str | None) -> tuple[subprocess.Popen, int]:
    config = directory / "ours.toml"
    config.write_text(CONFIG.format(data=directory / "ours"))
    read_fd, write_fd = os.pipe()
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += ["-m", "stalwart_py", "serve", "--config", str(config), "--notify-fd", str(write_fd)]
    env = {**os.environ, "STALWART_ADMIN_PASSWORD": ADMIN[1], "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, pass_fds=(write_fd,), env=env, cwd=ROOT)
    os.close(write_fd)
    ready = b""
    while b"\n" not in ready:
        readable, _, _ = select.select([read_fd], [], [], 30)
        chunk = os.read(read_fd, 65536) if readable else b""
        if not chunk:
            process.kill()
            raise SystemExit("our server did not start")
        ready += chunk
    os.close(read_fd)
    event = json.loads(ready.split(b"\n")[0])
    [listener] = event["listeners"]
    return process, int(listener["bind"][0].rpartition(":")[2])


def start_uvicorn(directory: Path) -> tuple[subprocess.Popen, int]:
    config = directory / "uvicorn.toml"
    config.write_text(CONFIG.format(data=directory / "uvicorn"))
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import bench.http_bench as b; "
        f"b.asgi_main({str(config)!r})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def prepare(port: int, uvicorn_side: bool, directory: Path) -> None:
    """Wait until the server answers, then create the recipient (and, for the ASGI side, the
    domain and the administrator, which our server makes at its first start)."""
    import http.client

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer on port {port}") from None
            time.sleep(0.1)
    if uvicorn_side:
        import anyio

        from stalwart_py.directory import Directory
        from stalwart_py.store.sqlite import SqliteStore

        async def admin() -> None:  # the store is the uvicorn side's, opened a second time
            store = SqliteStore(directory / "uvicorn")
            await store.open()
            await Directory(store).ensure_administrator("bench.test", ADMIN[1])
            await store.close()

        anyio.run(admin)
    conn.request(
        "POST",
        "/api/accounts",
        body=json.dumps({"address": RECIPIENT, "password": "bob-password"}),
        headers={"Authorization": authorization(), "Content-Type": "application/json"},
    )
    answer = conn.getresponse()
    assert answer.status == 201, answer.read()
    answer.read()


def wrk(port: int, endpoint: str, clients: int, duration: int, directory: Path) -> float:
    script = directory / f"{endpoint}.lua"
    if endpoint == "inject":
        script.write_text(
            textwrap.dedent(f"""
            wrk.method = "POST"
            wrk.body = {json.dumps(json.dumps(INJECTION))}
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["Authorization"] = "{authorization()}"
            """)
        )
        path = "/api/inject"
    else:
        script.write_text("")
        path = "/healthz"
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{duration}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "Non-2xx" in result.stdout or "Socket errors" in result.stdout:
        raise SystemExit(f"errors during the run:\n{result.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--clients", default="1,32", help="concurrent connections")
    parser.add_argument("--endpoints", default="healthz,inject")
    parser.add_argument("--profile", default=None, help="write a cProfile of our server here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if importlib.util.find_spec("uvicorn") is None:
        raise SystemExit("uvicorn is needed: .venv/bin/pip install -e '.[bench]'")
    clients = [int(c) for c in args.clients.split(",")]
    endpoints = args.endpoints.split(",")
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        directory = Path(tmp)
        ours, our_port = start_ours(directory, args.profile)
        theirs, their_port = start_uvicorn(directory)
        try:
            prepare(our_port, False, directory)
            prepare(their_port, True, directory)
            rows = []
            for endpoint in endpoints:
                for count in clients:
                    wrk(our_port, endpoint, count, 1, directory)  # warm up both
                    wrk(their_port, endpoint, count, 1, directory)
                    mine = wrk(our_port, endpoint, count, args.duration, directory)
                    other = wrk(their_port, endpoint, count, args.duration, directory)
                    rows.append((endpoint, count, mine, other))
        finally:
            for process in (ours, theirs):
                process.send_signal(signal.SIGTERM)
            for process in (ours, theirs):
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    print(f"\n{'endpoint':<16}{'clients':>8}{'stalwart-py':>14}{'uvicorn':>12}{'ratio':>8}")
    for endpoint, count, mine, other in rows:
        name = "GET /healthz" if endpoint == "healthz" else "POST /api/inject"
        print(f"{name:<16}{count:>8}{mine:>12.0f}/s{other:>10.0f}/s{mine / other:>8.2f}")
    print(
        "(requests per second with keep-alive; ratio = stalwart-py / uvicorn, same "
        "application, wrk on loopback)"
    )


if __name__ == "__main__":
    main()
