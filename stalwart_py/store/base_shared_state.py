"""The store's part for what every node must share (issue 18): DKIM signing keys, the
certificates the ACME client installs, its accounts and its pending challenges. Part of
``Store``, apart only to keep ``base`` small; both SQL backends implement it in
``sqlite_shared_state``. A write here is announced to every process and node (the change
sets' ``DKIM_CHANNEL`` and ``CERTIFICATES_CHANNEL``), which read the new state once."""

from __future__ import annotations

import abc

from stalwart_py.store.model import AcmeAccount, StoredCertificate, StoredDkimKey

# A pending ACME challenge older than this was left by a process that died during its order
# (an order takes seconds to minutes): it is answered no more (the readers pass ``since`` =
# now - this), and the next challenge set deletes it, so the table holds only the orders of
# the last hour, however many processes died mid-order. No sweeper: the table grows only by
# ``put_acme_challenge``, which clears it.
ACME_CHALLENGE_LIFETIME = 3600.0


class SharedStateStore(abc.ABC):
    # DKIM keys (``stalwart_py.queue.dkim``)

    @abc.abstractmethod
    async def dkim_keys(self) -> list[StoredDkimKey]:
        """Every stored key, by domain and selector."""

    @abc.abstractmethod
    async def add_dkim_key(self, key: StoredDkimKey, *, if_missing: bool = False) -> bool:
        """Keep a new key; AlreadyExists when the domain has one with that selector (with
        ``if_missing``: False instead, the stored key kept). True when added."""

    @abc.abstractmethod
    async def delete_dkim_key(self, domain: str, selector: str) -> None:
        """NotFound when there is no such key."""

    # Certificates installed at run time (``CertificateStore.install``)

    @abc.abstractmethod
    async def installed_certificates(self) -> list[StoredCertificate]: ...

    @abc.abstractmethod
    async def install_certificate(self, cert_id: str, chain: bytes, private_key: bytes) -> float:
        """Keep (or replace) the chain and key of ``cert_id``; returns its ``installed`` time."""

    # ACME (``stalwart_py.acme.manager``)

    @abc.abstractmethod
    async def acme_accounts(self) -> list[AcmeAccount]: ...

    @abc.abstractmethod
    async def acme_account(self, acme_id: str, new_key: bytes) -> AcmeAccount:
        """The account of ``acme_id``, created with ``new_key`` when it has none yet."""

    @abc.abstractmethod
    async def update_acme_account(
        self,
        acme_id: str,
        *,
        directory: str | None = None,
        url: str | None = None,
        state: str | None = None,
    ) -> None: ...

    @abc.abstractmethod
    async def put_acme_challenge(
        self, kind: str, name: str, answer: bytes, private_key: bytes | None = None
    ) -> None:
        """Keep (or replace) the answer to the challenge ``kind`` for ``name``, and delete
        every challenge older than ``ACME_CHALLENGE_LIFETIME``."""

    @abc.abstractmethod
    async def delete_acme_challenge(self, kind: str, name: str) -> None: ...

    @abc.abstractmethod
    async def acme_challenges(
        self, kind: str, since: float
    ) -> list[tuple[str, bytes, bytes | None]]: ...

    @abc.abstractmethod
    async def acme_challenge(self, kind: str, name: str, since: float) -> bytes | None: ...
