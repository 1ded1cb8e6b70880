"""How long the web pages take to answer with a server of realistic size (1,000 accounts,
10,000 queued messages), beside the JSON API's answer of the same data in the same run.

    .venv/bin/python bench/web_render.py [--accounts 1000] [--queued 10000] [--requests 30]

The goal is every page under 100 ms (the median, on an idle machine). Run by hand, not a
timed test: under load the figures move, the ratio to the API less so.

The data is written straight into a fresh SQLite store before the server starts (one
password hash shared by every account, the queue's messages enqueued in one go, the queue
held so that nothing is delivered); then ``stalwart-py serve`` runs as a child process, the
benchmark signs in as the administrator through the sign-in form, and asks for every page it
can name: each GET page of the site's page tables (``protocols/http/web/site.py``), a path
parameter filled with a real account or queue id. Each page is paired with the API route
that answers the same data (``REFERENCES``: the accounts list with ``/api/accounts``, the
queue with ``/api/queue?limit=...`` as many as the page shows), and the table prints both
medians and their ratio. The time is the client's, over one keep-alive connection on
loopback: what a browser waits for, less the network.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ADMIN = ("admin@bench.test", "bench-admin-password")
DOMAIN = "bench.test"
GOAL_MS = 100.0
CONFIG = """
[server]
hostname = "bench.test"
[storage]
data-dir = "{data}"
[logging]
level = "warning"
[queue]
hold = true  # the queued messages stay queued: the pages list them
[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
"""
MESSAGE = (
    b"From: Sender <sender@bench.test>\r\nTo: someone@remote.test\r\n"
    b"Subject: queued for the benchmark\r\nMessage-ID: <{n}@bench.test>\r\n\r\n"
    + b"A line of the body.\r\n"
    * 20
)

# A page (its template) -> the API request answering the same data. A page not named here is
# timed alone. ``{limit}`` is how many rows the page shows (--page-rows).
REFERENCES = {
    "/admin/accounts": "/api/accounts",
    "/admin/accounts/{address}": "/api/accounts/{address}",
    "/admin/domains": "/api/domains",
    "/admin/aliases": "/api/aliases",
    "/admin/queue": "/api/queue?limit={limit}",
    "/admin/queue/{id}": "/api/queue/{id}",
    "/admin/queue?page=last": "/api/queue?limit={limit}",
    "/admin/listeners": "/api/listeners",
    "/account/app-passwords": "/api/accounts/{me}/app-passwords",
    "/account/two-factor": "/api/accounts/{me}/totp",
}


def populate(data: Path, accounts: int, queued: int) -> dict[str, str]:
    """The store, before the server opens it: the domain, the administrator, ``accounts``
    accounts and ``queued`` queued messages. The values to fill path parameters with."""
    import anyio

    from stalwart_py import passwords
    from stalwart_py.store.model import OutboundMessage, QueuedRecipient
    from stalwart_py.store.sqlite import SqliteStore

    async def fill() -> dict[str, str]:
        store = SqliteStore(data)
        await store.open()
        await store.add_domain(DOMAIN)
        await store.add_account(ADMIN[0], passwords.hash_password(ADMIN[1]), None, is_admin=True)
        secret = passwords.hash_password("a user's password")  # once: scrypt costs ~80 ms
        for n in range(accounts):
            await store.add_account(f"user{n:05d}@{DOMAIN}", secret, None)
        first = 0
        for n in range(queued):
            message = OutboundMessage(
                f"user{n % max(accounts, 1):05d}@{DOMAIN}",
                (QueuedRecipient(f"someone{n}@remote{n % 50}.test"),),
            )
            queue_id = await store.enqueue(MESSAGE.replace(b"{n}", str(n).encode()), message)
            first = first or queue_id
        await store.close()
        return {
            "address": f"user{accounts // 2:05d}@{DOMAIN}",
            "id": str(first),
            "domain": DOMAIN,
            "name": DOMAIN,
            "me": ADMIN[0],
        }

    return anyio.run(fill)


def start(directory: Path) -> tuple[subprocess.Popen, int]:
    """``stalwart-py serve`` on the store; its port, once it says it is ready."""
    config = directory / "config.toml"
    config.write_text(CONFIG.format(data=directory / "data"))
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "stalwart_py", "serve", "--config", str(config)]
    command += ["--notify-fd", str(write_fd)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, pass_fds=(write_fd,), env=env, cwd=ROOT)
    os.close(write_fd)
    ready = b""
    while b"\n" not in ready:
        readable, _, _ = select.select([read_fd], [], [], 60)
        chunk = os.read(read_fd, 65536) if readable else b""
        if not chunk:
            process.kill()
            raise SystemExit("the server did not start")
        ready += chunk
    os.close(read_fd)
    [listener] = json.loads(ready.split(b"\n")[0])["listeners"]
    return process, int(listener["bind"][0].rpartition(":")[2])


class Client:
    """One keep-alive connection with the session's cookie (and Basic for the API)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.basic = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str):
        sent = {"Host": "127.0.0.1", **headers}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.partition(";")[0]
        return response.status, data

    def sign_in(self) -> None:
        status, page = self.request("GET", "/account/sign-in")
        found = re.search(rb'name="csrf" value="([^"]*)"', page)
        if status != 200 or found is None:
            raise SystemExit(f"the sign-in form: {status} {page[:300]!r}")
        fields = {"csrf": found.group(1).decode(), "address": ADMIN[0], "password": ADMIN[1]}
        form = urlencode(fields).encode()
        status, _ = self.request(
            "POST",
            "/account/sign-in",
            form,
            **{"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 303:
            raise SystemExit(f"signing in answered {status}")

    def time(self, path: str, count: int, *, api: bool = False) -> tuple[float, float, int]:
        """(median ms, 95th percentile ms, bytes) of ``count`` GETs, after one to warm up."""
        headers = {"Authorization": self.basic} if api else {}
        status, body = self.request("GET", path, **headers)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
        times = []
        for _ in range(count):
            started = time.perf_counter()
            self.request("GET", path, **headers)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[int(len(times) * 0.95) - 1], len(body)


def pages(values: dict[str, str]) -> list[tuple[str, str]]:
    """(template, path) of every GET page an administrator may open, parameters filled."""
    from protocols.http.web.pages import Level
    from protocols.http.web.site import page_tables

    out = []
    for table in page_tables():
        for page in table.pages:
            if "GET" not in page.methods or page.level < Level.ACCOUNT:
                continue
            names = re.findall(r"\{([^}]+)\}", page.template)
            if any(name not in values for name in names):
                print(f"(skipped {page.template}: no value for its parameters)")
                continue
            path = re.sub(
                r"\{([^}]+)\}", lambda m: quote(values[m.group(1)], safe="@"), page.template
            )
            out.append((page.template, path))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=30, help="timed GETs per page")
    parser.add_argument(
        "--page-rows",
        type=int,
        default=None,
        help="rows a list page shows, the API's limit beside it (default: the pages' PER_PAGE)",
    )
    args = parser.parse_args()
    if args.page_rows is None:
        from protocols.http.web.admin.common import PER_PAGE

        args.page_rows = PER_PAGE
    with tempfile.TemporaryDirectory(prefix="web-render-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        values = populate(directory / "data", args.accounts, args.queued)
        print(
            f"{args.accounts} accounts and {args.queued} queued messages written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        process, port = start(directory)
        try:
            client = Client(port)
            client.sign_in()
            rows = []
            # The last page of the long lists too: an offset that deep must not cost more.
            deep = [
                (
                    "/admin/queue?page=last",
                    f"/admin/queue?page={-(-args.queued // args.page_rows)}",
                ),
                (
                    "/admin/accounts?page=last",
                    f"/admin/accounts?page={-(-(args.accounts + 1) // args.page_rows)}",
                ),
            ]
            for template, path in [*pages(values), *deep]:
                page = client.time(path, args.requests)
                reference = REFERENCES.get(template)
                api = None
                if reference is not None:
                    target = reference.format(
                        limit=args.page_rows, **{k: quote(v, safe="@") for k, v in values.items()}
                    )
                    api = (target, client.time(target, args.requests, api=True))
                rows.append((path, page, api))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    print(
        f"\n{'page':<36}{'median':>9}{'p95':>9}{'KiB':>7}   {'the API beside it':<36}"
        f"{'median':>9}{'ratio':>7}"
    )
    over = []
    for path, (median, p95, size), api in rows:
        line = f"{path[:35]:<36}{median:>7.1f}ms{p95:>7.1f}ms{size / 1024:>7.1f}   "
        if api is not None:
            target, (api_median, _, _) = api
            line += f"{target[:35]:<36}{api_median:>7.1f}ms{median / api_median:>7.2f}"
        print(line)
        if median >= GOAL_MS:
            over.append(path)
    print(
        f"(client time over one keep-alive connection on loopback, {args.requests} requests "
        f"each; ratio = page / API; goal: every page under {GOAL_MS:.0f} ms)"
    )
    print("over the goal: " + (", ".join(over) if over else "none"))


if __name__ == "__main__":
    main()
