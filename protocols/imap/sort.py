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

Caches. ``KeyCache``: the collated keys of a body never change, so they are computed once per
body id (the store never reuses one) and shared by every session and mailbox. ``ResultMemo``:
a SORT or THREAD of the same messages of a mailbox by the same criteria has the same answer,
so the last few answers are kept (keyed by mailbox, UIDVALIDITY, criteria and the matching
UIDs), which is what a webmail re-sorting one folder on every page view asks for.
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


# sort key -> the SortFields attribute its collated string comes from
TEXT_KEYS = {
    "SUBJECT": "subject",
    "FROM": "from_mailbox",
    "TO": "to_mailbox",
    "CC": "cc_mailbox",
    "DISPLAYFROM": "from_display",
    "DISPLAYTO": "to_display",
}


class KeyCache:
    """Sort fields by body id, and their collated strings, each computed when first asked
    for (a SORT by SUBJECT does not pay for collating addresses)."""

    def __init__(self, capacity: int = KEY_CAPACITY) -> None:
        self.capacity = capacity
        self.fields: dict[int, SortFields] = {}
        self._collated: dict[str, dict[int, str]] = {name: {} for name in TEXT_KEYS.values()}

    async def load(self, store: Store, blob_ids: Sequence[int]) -> dict[int, SortFields]:
        """The fields of these bodies, read from the store for those not cached (bodies
        gone meanwhile are left out)."""
        known = self.fields
        missing = [blob_id for blob_id in blob_ids if blob_id not in known]
        for start in range(0, len(missing), READ_BATCH):
            known.update(await store.sort_fields(missing[start : start + READ_BATCH]))
        if len(known) > self.capacity:  # oldest first (dicts keep insertion order)
            for blob_id in list(known)[: len(known) - self.capacity]:
                del known[blob_id]
                for table in self._collated.values():
                    table.pop(blob_id, None)
        return known

    def collated(self, attribute: str, blob_ids: Sequence[int]) -> dict[int, str]:
        """``attribute`` of these bodies' fields under the collation (loaded bodies only)."""
        table = self._collated[attribute]
        fields = self.fields
        for blob_id in blob_ids:
            if blob_id not in table:
                entry = fields.get(blob_id)
                if entry is not None:
                    table[blob_id] = DEFAULT(getattr(entry, attribute))
        return table


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


def _key_function(name: str, cache: KeyCache, blob_ids: list[int]) -> Any:
    """The key of one criterion, as a function of a MessageInfo."""
    if name == "ARRIVAL":
        return lambda info: info.internaldate
    if name == "SIZE":
        return lambda info: info.size
    if name == "DATE":
        fields = cache.fields

        def sent(info: MessageInfo) -> float:
            entry = fields.get(info.blob_id)
            value = entry.sent if entry is not None else None
            return info.internaldate if value is None else value

        return sent
    table = cache.collated(TEXT_KEYS[name], blob_ids)
    return lambda info: table.get(info.blob_id, "")


def needs_fields(criteria: Sequence[SortCriterion]) -> bool:
    return any(criterion.key not in ("ARRIVAL", "SIZE") for criterion in criteria)


def sort_messages(
    infos: list[MessageInfo], criteria: Sequence[SortCriterion], cache: KeyCache
) -> list[int]:
    """The UIDs of ``infos`` (in UID order) sorted by ``criteria`` (their fields loaded
    into ``cache`` when ``needs_fields``)."""
    ordered = list(infos)
    blob_ids = [info.blob_id for info in infos]
    for criterion in reversed(criteria):
        ordered.sort(key=_key_function(criterion.key, cache, blob_ids), reverse=criterion.reverse)
    return [info.uid for info in ordered]
