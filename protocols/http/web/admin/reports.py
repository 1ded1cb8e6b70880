"""``/admin/reports``: the delivery status (DSN, RFC 3464) and feedback (ARF, RFC 5965) reports
the server received, newest first, a page at a time (``Store.list_reports``, as
``/api/reports``; each report's summary as ``report_json`` parses it)."""

from __future__ import annotations

from protocols.http.handlers.queue import report_json
from protocols.http.messages import Response
from protocols.http.web.admin.common import PER_PAGE, Paging, page_number
from protocols.http.web.pages import Level, PageTable, WebRequest

pages = PageTable()

MAX_REPORTS = 10_000  # /api/reports's largest limit: the pages reach as far


@pages.page("/admin/reports", level=Level.ADMIN)
async def reports(web: WebRequest) -> Response:
    number = page_number(web)
    start = (number - 1) * PER_PAGE
    found = await web.server.store.list_reports(min(start + PER_PAGE + 1, MAX_REPORTS))
    shown = [report_json(r) for r in found[start : start + PER_PAGE]]
    return web.render(
        "admin/reports.html",
        title="Reports received",
        listing=Paging(shown, number, len(found) > start + PER_PAGE, "/admin/reports?"),
    )
