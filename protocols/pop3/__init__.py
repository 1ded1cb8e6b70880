"""POP3 (RFC 1939) as a stalwart-py protocol plugin, built on the public plugin API alone
(``stalwart_py.plugin``; tests/unit/test_pop3.py checks that it imports nothing else).

Clients download the messages of INBOX and delete them: USER/PASS and AUTH (the server's
SASL mechanisms, RFC 5034), STAT, LIST, RETR, TOP, UIDL, DELE, RSET, NOOP and QUIT, which
applies the deletions atomically (IMAP sessions see them expunged); CAPA (RFC 2449), STLS
(RFC 2595), UTF8 (RFC 6856). APOP is not offered (it needs the password in clear on the
server). One session at a time per account: a second gets ``-ERR [IN-USE]``.

The sans-IO core: ``syntax`` (command lines, replies, byte-stuffing, sizes) and ``maildrop``
(the numbered snapshot of INBOX, deletion marks, unique ids, the lock); the I/O around it:
``session`` (the loop and the commands) and this class. Settings: ``settings``.

```toml
[server.listener.pop3]
bind = ["[::]:110"]
protocol = "pop3"

[server.listener.pop3s]
bind = ["[::]:995"]
protocol = "pop3"
tls.implicit = true
```
"""

from __future__ import annotations

from protocols.pop3.settings import AuthSettings, Pop3Settings
from protocols.pop3.syntax import err
from stalwart_py.plugin import Connection, Protocol, Refusal

__all__ = ["AuthSettings", "Pop3", "Pop3Settings"]


class Pop3(Protocol):
    name = "pop3"
    api_versions = (2, 2)
    settings = Pop3Settings
    starttls = True  # STLS: the listener prepares a certificate even without implicit TLS

    async def handle(self, conn: Connection) -> None:
        metrics = conn.server.metrics
        counters = {
            "logins": metrics.counter(
                "stalwart_pop3_logins", "POP3 USER/PASS and AUTH attempts", ["listener", "result"]
            ),
            "bad": metrics.counter(
                "stalwart_pop3_bad_commands", "POP3 commands refused as malformed", ["listener"]
            ),
            "deleted": metrics.counter(
                "stalwart_pop3_deleted_messages", "messages removed at POP3 QUIT", ["listener"]
            ),
        }
        # The session (and the maildrop under it) loads with the first connection, not at
        # every start (bench/startup.py).
        from protocols.pop3.session import Session

        await Session(conn, counters).run()

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        await conn.send(err(reason.text, "SYS/TEMP"))
