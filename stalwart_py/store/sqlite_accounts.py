"""SQLite backend: domains, accounts, aliases and Sieve scripts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from stalwart_py import names
from stalwart_py.store.base import UNCHANGED, Unchanged
from stalwart_py.store.blobs import release_mailbox_blobs
from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import (
    SPECIAL_USE_MAILBOXES,
    Account,
    Alias,
    AlreadyExists,
    Credentials,
    Domain,
    NotFound,
    SieveScript,
    StoreError,
)
from stalwart_py.store.sqlite_imap import add_subscription

ACCOUNT_COLUMNS = (
    "id, address, is_admin, quota_bytes, quota_messages, used_bytes, used_messages, created,"
    " disabled"
)


def account_from_row(row: tuple) -> Account:
    return Account(
        row[0], row[1], bool(row[2]), row[3], row[4], row[5], row[6], row[7], bool(row[8])
    )


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def valid_name(check: Callable[[str], str], text: str) -> str:
    """``text`` in lower case, checked by one of ``names``'s validators (whoever calls the
    store: a name that is not valid is never stored); StoreError says what was expected."""
    try:
        return check(text.lower())
    except names.InvalidName as exc:
        raise StoreError(str(exc)) from None


def next_uidvalidity(txn: Txn) -> int:
    """A UIDVALIDITY greater than every one given before: a mailbox deleted and created again
    under the same name must not look like the old one to a client."""
    # One statement, which locks the counter's row: two writers (PostgreSQL, several nodes)
    # never give the same value.
    now = int(txn.now)
    (value,) = txn.execute(
        "INSERT INTO meta(key, value) VALUES ('uidvalidity', ?) ON CONFLICT(key) DO UPDATE"
        " SET value = CAST(CASE WHEN CAST(meta.value AS BIGINT) + 1 > ?"
        " THEN CAST(meta.value AS BIGINT) + 1 ELSE ? END AS TEXT) RETURNING value",
        (str(max(now, 1)), now, now),
    ).fetchone()
    return int(value)


class AccountsMixin:
    _engine: Engine

    # -- domains ----------------------------------------------------------------------------

    async def add_domain(self, name: str) -> Domain:
        name = valid_name(names.domain, name)

        def op(txn: Txn) -> Domain:
            try:
                txn.execute("INSERT INTO domains(name, created) VALUES (?, ?)", (name, txn.now))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {name} already exists") from None
            return Domain(name, txn.now)

        return await self._engine.write(op)

    async def delete_domain(self, name: str) -> None:
        name = name.lower()

        def op(txn: Txn) -> None:
            users = txn.execute("SELECT count(*) FROM accounts WHERE domain = ?", (name,))
            if users.fetchone()[0]:
                raise StoreError(f"domain {name} still has accounts; delete them first")
            txn.execute(
                "DELETE FROM aliases WHERE address LIKE '%@' || ? ESCAPE '\\'", (_like(name),)
            )
            if not txn.execute("DELETE FROM domains WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no domain {name}")

        await self._engine.write(op)

    async def list_domains(self) -> list[Domain]:
        def op(conn: sqlite3.Connection) -> list[Domain]:
            rows = conn.execute("SELECT name, created FROM domains ORDER BY name")
            return [Domain(*row) for row in rows]

        return await self._engine.read(op)

    async def is_local_domain(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute("SELECT 1 FROM domains WHERE name = ?", (name,)).fetchone() is not None
            )

        return await self._engine.lookup(op)

    # -- accounts ---------------------------------------------------------------------------

    async def add_account(
        self,
        address: str,
        secret: str,
        scram: str | None,
        *,
        is_admin: bool = False,
        quota_bytes: int | None = None,
        quota_messages: int | None = None,
    ) -> Account:
        address = valid_name(names.mailbox, address)
        domain = domain_of(address)

        def op(txn: Txn) -> Account:
            if not txn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone():
                raise NotFound(f"{domain} is not a local domain")
            try:
                cursor = txn.execute(
                    "INSERT INTO accounts(address, domain, secret, scram, is_admin, quota_bytes,"
                    " quota_messages, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        address,
                        domain,
                        secret,
                        scram,
                        int(is_admin),
                        quota_bytes,
                        quota_messages,
                        txn.now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"account {address} already exists") from None
            account_id = cursor.fetchone()[0]
            for name, special_use in SPECIAL_USE_MAILBOXES:
                txn.execute(
                    "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity)"
                    " VALUES (?, ?, ?, ?)",
                    (account_id, name, special_use, next_uidvalidity(txn)),
                )
                add_subscription(txn, account_id, name)
            return Account(
                account_id, address, is_admin, quota_bytes, quota_messages, 0, 0, txn.now
            )

        return await self._engine.write(op)

    async def get_account(self, address: str) -> Account | None:
        def op(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE address = ?", (address,)
            ).fetchone()
            return account_from_row(row) if row else None

        return await self._engine.lookup(op)

    async def get_account_by_id(self, account_id: int) -> Account | None:
        def op(conn: sqlite3.Connection) -> Account | None:
            row = conn.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            return account_from_row(row) if row else None

        return await self._engine.lookup(op)

    async def list_accounts(self) -> list[Account]:
        def op(conn: sqlite3.Connection) -> list[Account]:
            rows = conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY address")
            return [account_from_row(row) for row in rows]

        return await self._engine.read(op)

    async def count_accounts(self) -> int:
        return await self._engine.read(
            lambda conn: conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
        )

    async def update_account(
        self,
        address: str,
        *,
        secret: str | Unchanged = UNCHANGED,
        scram: str | Unchanged | None = UNCHANGED,
        is_admin: bool | Unchanged = UNCHANGED,
        quota_bytes: int | Unchanged | None = UNCHANGED,
        quota_messages: int | Unchanged | None = UNCHANGED,
        disabled: bool | Unchanged = UNCHANGED,
    ) -> Account:
        changes = {
            column: value
            for column, value in (
                ("secret", secret),
                ("scram", scram),
                ("is_admin", is_admin),
                ("quota_bytes", quota_bytes),
                ("quota_messages", quota_messages),
                ("disabled", disabled if disabled is UNCHANGED else int(disabled)),
            )
            if value is not UNCHANGED
        }

        def op(txn: Txn) -> Account:
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                cursor = txn.execute(
                    f"UPDATE accounts SET {assignments} WHERE address = ?",
                    (*changes.values(), address),
                )
                if not cursor.rowcount:
                    raise NotFound(f"no account {address}")
            if disabled is True:  # its web sessions end, and stay ended once enabled again
                txn.execute(
                    "DELETE FROM web_sessions WHERE account_id ="
                    " (SELECT id FROM accounts WHERE address = ?)",
                    (address,),
                )
            row = txn.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE address = ?", (address,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no account {address}")
            return account_from_row(row)

        return await self._engine.write(op)

    async def delete_account(self, address: str) -> None:
        def op(txn: Txn) -> None:
            row = txn.execute("SELECT id FROM accounts WHERE address = ?", (address,)).fetchone()
            if row is None:
                raise NotFound(f"no account {address}")
            mailboxes = [
                r[0]
                for r in txn.execute("SELECT id FROM mailboxes WHERE account_id = ?", (row[0],))
            ]
            release_mailbox_blobs(txn, mailboxes)
            txn.touched.update(mailboxes)
            txn.execute("DELETE FROM accounts WHERE id = ?", (row[0],))
            txn.execute("DELETE FROM aliases WHERE target = ?", (address,))

        await self._engine.write(op)

    async def get_credentials(self, address: str) -> Credentials | None:
        def op(conn: sqlite3.Connection) -> Credentials | None:
            # With whether two-factor sign-in is on, so that a login without it costs no
            # second query. A disabled account has none: every login fails as for an
            # unknown address (same answer, same time).
            row = conn.execute(
                "SELECT id, address, secret, scram, EXISTS (SELECT 1 FROM totp"
                " WHERE totp.account_id = accounts.id AND totp.enabled = 1)"
                " FROM accounts WHERE address = ? AND disabled = 0",
                (address,),
            ).fetchone()
            return Credentials(*row[:4], bool(row[4])) if row else None

        return await self._engine.lookup(op)

    # -- aliases ----------------------------------------------------------------------------

    async def add_alias(self, address: str, targets: Sequence[str]) -> Alias:
        address = valid_name(names.alias, address)
        domain = domain_of(address)
        wanted = [valid_name(names.mailbox, target) for target in targets]

        def op(txn: Txn) -> Alias:
            if not txn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone():
                raise NotFound(f"{domain} is not a local domain")
            if txn.execute("SELECT 1 FROM accounts WHERE address = ?", (address,)).fetchone():
                raise AlreadyExists(f"{address} is an account")
            txn.conn.executemany(
                "INSERT INTO aliases(address, target) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(address, target) for target in wanted],
            )
            return _alias(txn.conn, address) or Alias(address, ())

        return await self._engine.write(op)

    async def delete_alias(self, address: str, targets: Sequence[str] = ()) -> None:
        def op(txn: Txn) -> None:
            if targets:
                removed = sum(
                    txn.execute(
                        "DELETE FROM aliases WHERE address = ? AND target = ?", (address, t)
                    ).rowcount
                    for t in targets
                )
            else:
                removed = txn.execute("DELETE FROM aliases WHERE address = ?", (address,)).rowcount
            if not removed:
                raise NotFound(
                    f"no alias {address}" + (f" to {', '.join(targets)}" if targets else "")
                )

        await self._engine.write(op)

    async def get_alias(self, address: str) -> Alias | None:
        return await self._engine.lookup(lambda conn: _alias(conn, address))

    async def list_aliases(self) -> list[Alias]:
        def op(conn: sqlite3.Connection) -> list[Alias]:
            grouped: dict[str, list[str]] = {}
            for address, target in conn.execute(
                "SELECT address, target FROM aliases ORDER BY address, target"
            ):
                grouped.setdefault(address, []).append(target)
            return [Alias(address, tuple(targets)) for address, targets in grouped.items()]

        return await self._engine.read(op)

    async def aliases_of(self, address: str) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT address FROM aliases WHERE target = ? ORDER BY address",
                (address,),
            )
            return [row[0] for row in rows]

        return await self._engine.lookup(op)

    # -- Sieve scripts ----------------------------------------------------------------------

    async def list_scripts(self, account_id: int) -> list[SieveScript]:
        def op(conn: sqlite3.Connection) -> list[SieveScript]:
            rows = conn.execute(
                "SELECT name, body, active FROM sieve_scripts WHERE account_id = ? ORDER BY name",
                (account_id,),
            )
            return [SieveScript(name, body, bool(active)) for name, body, active in rows]

        return await self._engine.read(op)

    async def get_script(self, account_id: int, name: str) -> SieveScript | None:
        def op(conn: sqlite3.Connection) -> SieveScript | None:
            row = conn.execute(
                "SELECT name, body, active FROM sieve_scripts WHERE account_id = ? AND name = ?",
                (account_id, name),
            ).fetchone()
            return SieveScript(row[0], row[1], bool(row[2])) if row else None

        return await self._engine.lookup(op)

    async def put_script(self, account_id: int, name: str, body: str) -> None:
        def op(txn: Txn) -> None:
            txn.execute(
                "INSERT INTO sieve_scripts(account_id, name, body) VALUES (?, ?, ?) "
                "ON CONFLICT(account_id, name) DO UPDATE SET body = excluded.body",
                (account_id, name, body),
            )

        await self._engine.write(op)

    async def delete_script(self, account_id: int, name: str) -> None:
        def op(txn: Txn) -> None:
            row = txn.execute(
                "SELECT active FROM sieve_scripts WHERE account_id = ? AND name = ?",
                (account_id, name),
            ).fetchone()
            if row is None:
                raise NotFound(f"no script {name}")
            if row[0]:
                raise StoreError(f"script {name} is active")
            txn.execute(
                "DELETE FROM sieve_scripts WHERE account_id = ? AND name = ?", (account_id, name)
            )

        await self._engine.write(op)

    async def rename_script(self, account_id: int, old: str, new: str) -> None:
        def op(txn: Txn) -> None:
            try:
                cursor = txn.execute(
                    "UPDATE sieve_scripts SET name = ? WHERE account_id = ? AND name = ?",
                    (new, account_id, old),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"script {new} already exists") from None
            if not cursor.rowcount:
                raise NotFound(f"no script {old}")

        await self._engine.write(op)

    async def set_active_script(self, account_id: int, name: str | None) -> None:
        def op(txn: Txn) -> None:
            if (
                name is not None
                and not txn.execute(
                    "SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?",
                    (account_id, name),
                ).fetchone()
            ):
                raise NotFound(f"no script {name}")
            txn.execute(
                "UPDATE sieve_scripts SET active = CASE WHEN name = ? THEN 1 ELSE 0 END"
                " WHERE account_id = ?",
                (name, account_id),
            )

        await self._engine.write(op)

    async def active_script(self, account_id: int) -> SieveScript | None:
        def op(conn: sqlite3.Connection) -> SieveScript | None:
            row = conn.execute(
                "SELECT name, body FROM sieve_scripts WHERE account_id = ? AND active != 0",
                (account_id,),
            ).fetchone()
            return SieveScript(row[0], row[1], True) if row else None

        return await self._engine.lookup(op)


def _alias(conn: sqlite3.Connection, address: str) -> Alias | None:
    rows = conn.execute(
        "SELECT address, target FROM aliases WHERE address = ? ORDER BY target", (address,)
    ).fetchall()
    return Alias(rows[0][0], tuple(row[1] for row in rows)) if rows else None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
