"""SORT (RFC 5256 section 3, with SORT=DISPLAY of RFC 5957) as a pure function over the
view's messages and their stored sort fields, with the caches that make it cheap.

Ordering. Criteria are applied left to right; a REVERSE criterion is reversed alone; messages
equal under every criterion stay in mailbox (sequence, hence UID) order. Done as stable
sorts from the last criterion to the first (Python's sort is stable, also with
``reverse=True``), which mixes directions without inventing inverted string keys.

Keys (RFC 5256 section 3): ARRIVAL the INTERNALDATE; DATE the Date header in UTC, or the
INTERNALDATE when it has none or it cannot be parsed; SIZE the RFC822.SIZE; SUBJECT the base
subject; FROM, TO, CC the addr-mailbox of the first address; DISPLAYFROM, DISPLAYTO the
display name or else the address (RFC 5957). Strings compare under i;unicode-casemap
(``collation``); a missing field is the empty string, which sorts first.

Caches. ``KeyCache``: the collated keys of a body never change, so they are read and
computed once per body id (the store never reuses one), one key column at a time, and shared
by every session and mailbox. ``ResultMemo``: a SORT or THREAD of the same messages of a
mailbox by the same criteria has the same answer, so the last few answers are kept (keyed by
mailbox, UIDVALIDITY, criteria and the matching UIDs), which is what a webmail re-sorting
one folder on every page view asks for.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from protocols.imap.collation import DEFAULT
from protocols.imap.sort_parse import SortCriterion
from stalwart_py.mime.sortfields import SortFields
from stalwart_py.store import MessageInfo, Store

KEY_CAPACITY = 200_000  # bodies whose sort keys are kept
MEMO_CAPACITY = 16  # SORT/THREAD answers kept
READ_BATCH = 5000  # sort fields read from the store at once


# sort key -> the sort_fields column its key comes from (a collated string, or DATE's time)
KEY_COLUMNS = {
    "SUBJECT": "subject",
    "FROM": "from_mailbox",
    "TO": "to_mailbox",
    "CC": "cc_mailbox",
    "DISPLAYFROM": "from_display",
    "DISPLAYTO": "to_display",
    "DATE": "sent",
}


class KeyCache:
    """Per body id: the sort key of each column, and the whole sort fields THREAD needs,
    each read from the store when first asked for. A SORT by SUBJECT reads and collates the
    subjects alone: on the first SORT of a large mailbox, reading every column into
    ``SortFields`` objects cost three times what the sort did."""

    def __init__(self, capacity: int = KEY_CAPACITY) -> None:
        self.capacity = capacity
        self.fields: dict[int, SortFields] = {}
        self._keys: dict[str, dict[int, Any]] = {column: {} for column in KEY_COLUMNS.values()}

    async def load(self, store: Store, blob_ids: Sequence[int]) -> dict[int, SortFields]:
        """The whole fields of these bodies, read from the store for those not cached
        (bodies gone meanwhile are left out)."""
        known = self.fields
        missing = [blob_id for blob_id in blob_ids if blob_id not in known]
        for start in range(0, len(missing), READ_BATCH):
            known.update(await store.sort_fields(missing[start : start + READ_BATCH]))
        _trim(known, self.capacity)
        return known

    async def keys(
        self, store: Store, column: str, blob_ids: Sequence[int], mailbox_id: int
    ) -> dict[int, Any]:
        """``column``'s key of these bodies of a mailbox: strings under the collation,
        ``sent`` as stored (None: no usable Date). Bodies gone meanwhile are left out."""
        table = self._keys[column]
        missing = [blob_id for blob_id in blob_ids if blob_id not in table]
        if not missing:
            return table
        fields = self.fields
        values = {b: getattr(fields[b], column) for b in missing if b in fields}
        unread = [blob_id for blob_id in missing if blob_id not in values]
        if unread:
            values.update(await store.sort_column(column, unread, mailbox_id))
        if column != "sent":
            values = {blob_id: DEFAULT(value) for blob_id, value in values.items()}
        table.update(values)
        _trim(table, self.capacity)
        return table


def _trim(table: dict[int, Any], capacity: int) -> None:
    """Drop the oldest entries past ``capacity`` (dicts keep insertion order)."""
    if len(table) > capacity:
        for blob_id in list(table)[: len(table) - capacity]:
            del table[blob_id]


class ResultMemo:
    def __init__(self, capacity: int = MEMO_CAPACITY) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: Hashable, answer: Any) -> None:
        self._answers[key] = answer
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)


class SortCaches:
    def __init__(self) -> None:
        self.keys = KeyCache()
        self.memo = ResultMemo()


_BY_STORE: weakref.WeakKeyDictionary[Store, SortCaches] = weakref.WeakKeyDictionary()


def sort_caches(store: Store) -> SortCaches:
    found = _BY_STORE.get(store)
    if found is None:
        found = _BY_STORE[store] = SortCaches()
    return found


async def key_tables(
    store: Store,
    criteria: Sequence[SortCriterion],
    cache: KeyCache,
    blob_ids: Sequence[int],
    mailbox_id: int,
) -> dict[str, dict[int, Any]]:
    """The key tables ``sort_messages`` needs for ``criteria`` (of these bodies of a
    mailbox), loaded into ``cache``."""
    return {
        criterion.key: await cache.keys(store, KEY_COLUMNS[criterion.key], blob_ids, mailbox_id)
        for criterion in criteria
        if criterion.key in KEY_COLUMNS
    }


def _key_function(name: str, tables: dict[str, dict[int, Any]]) -> Any:
    """The key of one criterion, as a function of a MessageInfo."""
    if name == "ARRIVAL":
        return lambda info: info.internaldate
    if name == "SIZE":
        return lambda info: info.size
    table = tables[name]
    if name == "DATE":

        def sent(info: MessageInfo) -> float:
            value = table.get(info.blob_id)
            return info.internaldate if value is None else value

        return sent
    return lambda info: table.get(info.blob_id, "")


def sort_messages(
    infos: list[MessageInfo],
    criteria: Sequence[SortCriterion],
    tables: dict[str, dict[int, Any]],
) -> list[int]:
    """The UIDs of ``infos`` (in UID order) sorted by ``criteria``, their keys in
    ``tables`` (``key_tables``)."""
    ordered = list(infos)
    for criterion in reversed(criteria):
        ordered.sort(key=_key_function(criterion.key, tables), reverse=criterion.reverse)
    return [info.uid for info in ordered]
