"""Several messages added in one transaction: IMAP MULTIAPPEND (RFC 3502 section 3 wants
"all or none": a failure on any message leaves the mailbox as it was).

The bodies are hashed and parsed before the write (``prepare_blobs``), so the writer thread
only copies bytes; the quota is charged once for the whole set, so a set that does not fit
fails as a whole before any row is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from stalwart_py.store.blobs import put_blob
from stalwart_py.store.engine import Engine, Txn
from stalwart_py.store.model import MessageInfo, NewMessage, split_flags
from stalwart_py.store.sqlite_blobs import BlobsMixin
from stalwart_py.store.sqlite_mail import _account_of, _charge_quota, _insert_message


class AppendMixin(BlobsMixin):
    _engine: Engine

    async def append_many(
        self, mailbox_id: int, messages: Sequence[NewMessage]
    ) -> list[MessageInfo]:
        if not messages:
            return []
        blobs = await self._prepare_bodies([message.data for message in messages])
        now = time.time()
        rows = [
            (
                blob,
                *split_flags(message.flags),
                now if message.internaldate is None else message.internaldate,
            )
            for blob, message in zip(blobs, messages, strict=True)
        ]
        total = sum(len(message.data) for message in messages)

        def op(txn: Txn) -> list[MessageInfo]:
            # Any exception rolls the whole transaction back: nothing of the set is kept.
            _charge_quota(txn, _account_of(txn, mailbox_id), total, len(messages))
            infos = []
            for blob, bits, keywords, when in rows:
                blob_id = put_blob(txn, blob)
                infos.append(
                    _insert_message(txn, mailbox_id, blob_id, len(blob.data), bits, keywords, when)
                )
            return infos

        return await self._write_with_bodies(blobs, op)
