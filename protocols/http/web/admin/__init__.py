"""The administrator's pages, ``/admin/`` (``Level.ADMIN``: 403 for everyone else).

One module per area, each with its ``PageTable``. Every page calls what the JSON API's handler
for the same thing calls (the directory, the store, the listener registry, the reload, the DNS
report), so the pages and ``/api/`` cannot disagree; docs/web.md lists the pages.
"""

from __future__ import annotations

from protocols.http.web.admin import (
    accounts,
    aliases,
    dashboard,
    domains,
    listeners,
    queue,
    reports,
)

TABLES = (
    dashboard.pages,
    accounts.pages,
    domains.pages,
    aliases.pages,
    queue.pages,  # /admin/queue/retry before /admin/queue/{id}
    listeners.pages,
    reports.pages,
)
