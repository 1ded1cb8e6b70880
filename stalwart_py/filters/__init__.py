"""The filter API: filters that see a message after DATA and before it is stored.

``api`` is what a filter plugin imports; ``config`` reads ``[filter."<id>"]``; ``runner`` runs
a listener's chain; ``changes`` applies header and body changes. See docs/filters.md.
"""

from stalwart_py.filters.api import (
    Accept,
    AddHeader,
    ChangeHeader,
    Changes,
    Discard,
    Filter,
    FilterError,
    FilterMessage,
    InsertHeader,
    Quarantine,
    Reject,
    TempFail,
    Verdict,
)

__all__ = [
    "Accept",
    "AddHeader",
    "ChangeHeader",
    "Changes",
    "Discard",
    "Filter",
    "FilterError",
    "FilterMessage",
    "InsertHeader",
    "Quarantine",
    "Reject",
    "TempFail",
    "Verdict",
]
