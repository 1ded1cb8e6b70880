"""What every node must share, for both SQL backends: DKIM signing keys, the certificates
installed at run time (ACME), the ACME accounts and the pending ACME challenges.

They lived under each node's data directory, so a key generated on node A did not sign on
node B, and a certificate ordered by A was not served by B. In the store they are the same on
every node (and in a backup of the store, and copied by ``migrate``). A write that changes
them adds a pseudo mailbox id to the batch's change set (``DKIM_CHANNEL``, or
``CERTIFICATES_CHANNEL``): the processes of this node hear it by datagram, other nodes by the
NOTIFY sent in the batch's transaction (``pg_notify.py``), and each reads the new state once,
outside any handshake or signature. Migration ``_v16_shared_state`` (PostgreSQL
``_v10_shared_state``) creates the tables.

Private keys are in the database as PEM: the database file is 0600 (SQLite) or behind the
database's own access control (PostgreSQL), as the password verifiers are; no method here
logs them and the records keep them out of their ``repr``.
"""

from __future__ import annotations

import sqlite3

from stalwart_py.store.base_shared_state import ACME_CHALLENGE_LIFETIME
from stalwart_py.store.change_hub import CERTIFICATES_CHANNEL
from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import (
    AcmeAccount,
    AlreadyExists,
    NotFound,
    StoredCertificate,
    StoredDkimKey,
)

# A pseudo mailbox id (see ``change_hub.QUEUE_CHANNEL``): the DKIM keys changed; every signer
# reads them again.
DKIM_CHANNEL = -2

SQLITE_TABLES = """
CREATE TABLE dkim_keys (
    domain TEXT NOT NULL COLLATE NOCASE,
    selector TEXT NOT NULL,
    private_key BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (domain, selector)
) WITHOUT ROWID;

CREATE TABLE tls_certificates (
    id TEXT PRIMARY KEY,
    chain BLOB NOT NULL,
    private_key BLOB NOT NULL,
    installed REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE acme_accounts (
    id TEXT PRIMARY KEY,
    private_key BLOB NOT NULL,
    directory TEXT,
    url TEXT,
    state TEXT,
    created REAL NOT NULL
) WITHOUT ROWID;

-- kind "http-01": name is the token, answer the key authorization. Kind "tls-alpn-01": name
-- is the domain, answer the validation certificate and private_key its key (RFC 8737).
CREATE TABLE acme_challenges (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    answer BLOB NOT NULL,
    private_key BLOB,
    created REAL NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
"""

POSTGRESQL_TABLES = """
CREATE TABLE dkim_keys (
    domain citext NOT NULL,
    selector text COLLATE "C" NOT NULL,
    private_key bytea NOT NULL,
    created double precision NOT NULL,
    PRIMARY KEY (domain, selector)
);

CREATE TABLE tls_certificates (
    id text COLLATE "C" PRIMARY KEY,
    chain bytea NOT NULL,
    private_key bytea NOT NULL,
    installed double precision NOT NULL
);

CREATE TABLE acme_accounts (
    id text COLLATE "C" PRIMARY KEY,
    private_key bytea NOT NULL,
    directory text COLLATE "C",
    url text COLLATE "C",
    state text COLLATE "C",
    created double precision NOT NULL
);

CREATE TABLE acme_challenges (
    kind text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    answer bytea NOT NULL,
    private_key bytea,
    created double precision NOT NULL,
    PRIMARY KEY (kind, name)
);
"""


class SharedStateMixin:
    _engine: Engine

    # -- DKIM keys ---------------------------------------------------------------------

    async def dkim_keys(self) -> list[StoredDkimKey]:
        def op(conn: sqlite3.Connection) -> list[StoredDkimKey]:
            rows = conn.execute(
                "SELECT domain, selector, private_key, created FROM dkim_keys"
                " ORDER BY domain, selector"
            )
            return [StoredDkimKey(d, s, bytes(k), c) for d, s, k, c in rows]

        return await self._engine.read(op)

    async def add_dkim_key(self, key: StoredDkimKey, *, if_missing: bool = False) -> bool:
        def op(txn: Txn) -> bool:
            added = txn.execute(
                "INSERT INTO dkim_keys(domain, selector, private_key, created)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(domain, selector) DO NOTHING",
                (key.domain, key.selector, key.private_key, key.created),
            ).rowcount
            if not added and not if_missing:
                raise AlreadyExists(
                    f"the DKIM key {key.selector} of {key.domain} exists already;"
                    " choose another selector"
                )
            if added:
                txn.touched.add(DKIM_CHANNEL)
            return bool(added)

        return await self._engine.write(op)

    async def delete_dkim_key(self, domain: str, selector: str) -> None:
        def op(txn: Txn) -> None:
            deleted = txn.execute(
                "DELETE FROM dkim_keys WHERE domain = ? AND selector = ?", (domain, selector)
            ).rowcount
            if not deleted:
                raise NotFound(f"{domain} has no DKIM key with the selector {selector}")
            txn.touched.add(DKIM_CHANNEL)

        await self._engine.write(op)

    # -- installed certificates ----------------------------------------------------------

    async def installed_certificates(self) -> list[StoredCertificate]:
        def op(conn: sqlite3.Connection) -> list[StoredCertificate]:
            rows = conn.execute(
                "SELECT id, chain, private_key, installed FROM tls_certificates ORDER BY id"
            )
            return [StoredCertificate(i, bytes(c), bytes(k), t) for i, c, k, t in rows]

        return await self._engine.read(op)

    async def install_certificate(self, cert_id: str, chain: bytes, private_key: bytes) -> float:
        def op(txn: Txn) -> float:
            txn.execute(
                "INSERT INTO tls_certificates(id, chain, private_key, installed)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET chain = excluded.chain,"
                " private_key = excluded.private_key, installed = excluded.installed",
                (cert_id, chain, private_key, txn.now),
            )
            txn.touched.add(CERTIFICATES_CHANNEL)
            return txn.now

        return await self._engine.write(op)

    # -- ACME accounts -------------------------------------------------------------------

    async def acme_accounts(self) -> list[AcmeAccount]:
        def op(conn: sqlite3.Connection) -> list[AcmeAccount]:
            rows = conn.execute(
                "SELECT id, private_key, directory, url, state FROM acme_accounts ORDER BY id"
            )
            return [AcmeAccount(i, bytes(k), d, u, s) for i, k, d, u, s in rows]

        return await self._engine.read(op)

    async def acme_account(self, acme_id: str, new_key: bytes) -> AcmeAccount:
        """The account of ``acme_id``, made with ``new_key`` if it has none yet. Two nodes
        asking at once get the same key (the first insert wins), so the CA sees one account."""

        def op(txn: Txn) -> AcmeAccount:
            txn.execute(
                "INSERT INTO acme_accounts(id, private_key, created) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO NOTHING",
                (acme_id, new_key, txn.now),
            )
            i, k, d, u, s = txn.execute(
                "SELECT id, private_key, directory, url, state FROM acme_accounts WHERE id = ?",
                (acme_id,),
            ).fetchone()
            return AcmeAccount(i, bytes(k), d, u, s)

        return await self._engine.write(op)

    async def update_acme_account(
        self,
        acme_id: str,
        *,
        directory: str | None = None,
        url: str | None = None,
        state: str | None = None,
    ) -> None:
        """Set what is given (None: leave it); the account must exist (``acme_account``).
        A new ``state`` is announced on ``CERTIFICATES_CHANNEL``."""

        def op(txn: Txn) -> None:
            txn.execute(
                "UPDATE acme_accounts SET directory = coalesce(?, directory),"
                " url = coalesce(?, url), state = coalesce(?, state) WHERE id = ?",
                (directory, url, state, acme_id),
            )
            if state is not None:
                txn.touched.add(CERTIFICATES_CHANNEL)

        await self._engine.write(op)

    # -- ACME challenges (answered by whichever node the CA reaches) ---------------------

    async def put_acme_challenge(
        self, kind: str, name: str, answer: bytes, private_key: bytes | None = None
    ) -> None:
        def op(txn: Txn) -> None:
            txn.execute(
                "INSERT INTO acme_challenges(kind, name, answer, private_key, created)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, name) DO UPDATE SET"
                " answer = excluded.answer, private_key = excluded.private_key,"
                " created = excluded.created",
                (kind, name, answer, private_key, txn.now),
            )
            # those left by processes that died mid-order (no reader answers them any more)
            txn.execute(
                "DELETE FROM acme_challenges WHERE created < ?",
                (txn.now - ACME_CHALLENGE_LIFETIME,),
            )
            txn.touched.add(CERTIFICATES_CHANNEL)

        await self._engine.write(op)

    async def delete_acme_challenge(self, kind: str, name: str) -> None:
        def op(txn: Txn) -> None:
            txn.execute("DELETE FROM acme_challenges WHERE kind = ? AND name = ?", (kind, name))
            txn.touched.add(CERTIFICATES_CHANNEL)

        await self._engine.write(op)

    async def acme_challenges(
        self, kind: str, since: float
    ) -> list[tuple[str, bytes, bytes | None]]:
        """The challenges of ``kind`` set at ``since`` or later: (name, answer, key)."""

        def op(conn: sqlite3.Connection) -> list[tuple[str, bytes, bytes | None]]:
            rows = conn.execute(
                "SELECT name, answer, private_key FROM acme_challenges"
                " WHERE kind = ? AND created >= ? ORDER BY name",
                (kind, since),
            )
            return [(n, bytes(a), None if k is None else bytes(k)) for n, a, k in rows]

        return await self._engine.read(op)

    async def acme_challenge(self, kind: str, name: str, since: float) -> bytes | None:
        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT answer FROM acme_challenges WHERE kind = ? AND name = ? AND created >= ?",
                (kind, name, since),
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._engine.lookup(op)
