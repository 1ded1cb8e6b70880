"""mbsync (isync) against the IMAP server: a 500-message account is synced down to a local
Maildir, changed there (flags, a deletion, a new message) and synced back up; the server
must then hold exactly what the Maildir holds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.imap_support import PASSWORD, USER, message, start
from tests.support.servers import InProcessServer

pytestmark = pytest.mark.interop

COUNT = 500
MAILDIR_FLAGS = {"S": "\\Seen", "F": "\\Flagged", "R": "\\Answered", "D": "\\Draft"}


def load(server: InProcessServer) -> None:
    """500 messages in INBOX and 3 in Archive, stored concurrently (group commit)."""

    async def run() -> None:
        import anyio

        store = server.context.store
        account = await store.get_account(USER)
        assert account is not None
        inbox = await store.get_mailbox(account.id, "INBOX")
        archive = await store.get_mailbox(account.id, "Archive")
        assert inbox is not None and archive is not None

        async with anyio.create_task_group() as group:
            for index in range(COUNT):
                flags = frozenset({"\\Seen"}) if index % 3 == 0 else frozenset()
                data = message(f"bulk {index:03d}", f"Body of message {index}.\r\n")
                group.start_soon(lambda d=data, f=flags: store.append(inbox.id, d, flags=f))
            for index in range(3):
                group.start_soon(store.append, archive.id, message(f"archived {index}"))

    server.run(run)


def write_config(path: Path, port: int, maildir: Path) -> Path:
    config = path / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount test
Host 127.0.0.1
Port {port}
User {USER}
Pass "{PASSWORD}"
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore remote
Account test

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    return config


def run_mbsync(config: Path) -> None:
    result = subprocess.run(
        [require_tool("mbsync"), "-c", str(config), "-a"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def maildir_messages(folder: Path) -> dict[int, tuple[Path, str]]:
    """UID (from mbsync's ",U=" in the file name) -> (path, maildir flags)."""
    out = {}
    for sub in ("cur", "new"):
        for path in (folder / sub).iterdir():
            match = re.search(r",U=(\d+)", path.name)
            assert match, path.name
            flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            out[int(match.group(1))] = (path, flags)
    return out


def server_state(server: InProcessServer, mailbox: str) -> dict[int, frozenset[str]]:
    async def run() -> dict[int, frozenset[str]]:
        store = server.context.store
        account = await store.get_account(USER)
        assert account is not None
        box = await store.get_mailbox(account.id, mailbox)
        assert box is not None
        return {info.uid: info.flags for info in await store.messages(box.id)}

    return server.run(run)


def test_mbsync_round_trip(start_server, server_cert, tmp_path):
    require_tool("mbsync")
    server = start(start_server, server_cert)
    load(server)
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    config = write_config(tmp_path, server.address("imap")[1], maildir)

    run_mbsync(config)
    local = maildir_messages(maildir / "INBOX")
    assert len(local) == COUNT
    assert len(maildir_messages(maildir / "Archive")) == 3
    remote = server_state(server, "INBOX")
    assert set(local) == set(remote)
    for uid, (_, flags) in local.items():
        assert ("S" in flags) == ("\\Seen" in remote[uid])

    # local changes: flag ten messages, mark ten read, delete one, add one
    uids = sorted(local)
    for uid in uids[1:11]:
        path, flags = local[uid]
        path.rename(
            path.with_name(path.name.split(":2,")[0] + ":2," + "".join(sorted(flags + "F")))
        )
    for uid in uids[20:30]:
        path, flags = local[uid]
        if "S" not in flags:
            path.rename(
                path.with_name(path.name.split(":2,")[0] + ":2," + "".join(sorted(flags + "S")))
            )
    deleted = uids[42]
    local[deleted][0].unlink()
    (maildir / "INBOX" / "new" / "1700000000.local.host").write_bytes(message("written offline"))

    run_mbsync(config)
    local = maildir_messages(maildir / "INBOX")
    remote = server_state(server, "INBOX")
    assert deleted not in remote
    assert len(remote) == COUNT  # 500 - 1 deleted + 1 new
    assert set(local) == set(remote)
    for uid, (_, flags) in local.items():
        expected = {MAILDIR_FLAGS[f] for f in flags if f in MAILDIR_FLAGS}
        assert set(remote[uid]) == expected, (uid, flags, remote[uid])
    for uid in uids[1:11]:
        assert "\\Flagged" in remote[uid]
    for uid in uids[20:30]:
        assert "\\Seen" in remote[uid]

    # a third run changes nothing
    run_mbsync(config)
    assert server_state(server, "INBOX") == remote
