"""``/admin/queue``: the outbound queue, a page at a time (oldest first, as ``/api/queue``);
one queued message with its recipients and their last errors; retry now (one message, or every
one); delete a message without a bounce, after a confirmation page.

The same store calls as ``/api/queue``: ``queue_size``, ``queue_entries`` (with an offset: a
page of 50 reads 50 messages, however long the queue), ``queue_entry``, ``retry_queue``,
``delete_queue_entry``.
"""

from __future__ import annotations

from protocols.http.handlers.queue import MAX_QUEUE_ID
from protocols.http.messages import HttpError, Response, bounded_int
from protocols.http.web import render
from protocols.http.web.admin.common import PER_PAGE, Paging, confirmation, confirmed, page_number
from protocols.http.web.pages import Level, PageTable, WebRequest
from stalwart_py.store import NotFound, QueueEntry

pages = PageTable()

DONE = {"deleted": "The message is deleted from the queue."}


@pages.page("/admin/queue", level=Level.ADMIN)
async def queue(web: WebRequest) -> Response:
    store = web.server.store
    number = page_number(web)
    messages, recipients = await store.queue_size()
    entries = await store.queue_entries(limit=PER_PAGE + 1, offset=(number - 1) * PER_PAGE)
    retried = web.query("retried")
    return web.render(
        "admin/queue.html",
        title="Outbound queue",
        size=(messages, recipients),
        listing=Paging(entries[:PER_PAGE], number, len(entries) > PER_PAGE, "/admin/queue?"),
        done=DONE.get(web.query("done"), ""),
        retried=int(retried) if retried.isascii() and retried.isdigit() else None,
    )


@pages.page("/admin/queue/retry", methods=("POST",), level=Level.ADMIN)
async def retry_all(web: WebRequest) -> Response:
    count = await web.server.store.retry_queue(None)
    web.log.info("queue: %d recipients made due now by %s", count, web.account.address)
    return render.redirect(f"/admin/queue?retried={count}")


async def _entry(web: WebRequest) -> QueueEntry:
    text = web.params["id"]
    queue_id = bounded_int(text, 1, MAX_QUEUE_ID)
    entry = None if queue_id is None else await web.server.store.queue_entry(queue_id)
    if entry is None:
        raise HttpError(404, f"There is no queued message {text}.")
    return entry


@pages.page("/admin/queue/{id}", level=Level.ADMIN)
async def message(web: WebRequest) -> Response:
    entry = await _entry(web)
    retried = web.query("retried")
    return web.render(
        "admin/queue_entry.html",
        title=f"Queued message {entry.id}",
        entry=entry,
        retried=int(retried) if retried.isascii() and retried.isdigit() else None,
    )


@pages.page("/admin/queue/{id}/retry", methods=("POST",), level=Level.ADMIN)
async def retry(web: WebRequest) -> Response:
    entry = await _entry(web)
    count = await web.server.store.retry_queue(entry.id)
    web.log.info(
        "queue: message %d, %d recipients due now by %s", entry.id, count, web.account.address
    )
    return render.redirect(f"/admin/queue/{entry.id}?retried={count}")


@pages.page("/admin/queue/{id}/delete", methods=("GET", "POST"), level=Level.ADMIN)
async def delete(web: WebRequest) -> Response:
    """GET (or a POST without ``confirm=yes``): the confirmation page; its form deletes."""
    entry = await _entry(web)
    if not confirmed(web):
        return confirmation(
            web,
            title=f"Delete queued message {entry.id}?",
            action=f"/admin/queue/{entry.id}/delete",
            back=f"/admin/queue/{entry.id}",
            question=(
                f"Delete the message from {entry.mail_from or '<>'} to "
                f"{len(entry.recipients)} recipient(s) from the queue? It is not delivered "
                "and no bounce is sent."
            ),
            button="Delete the message",
        )
    try:
        await web.server.store.delete_queue_entry(entry.id)
    except NotFound:
        raise HttpError(404, f"There is no queued message {entry.id}.") from None
    web.log.info("queue: message %d deleted by %s", entry.id, web.account.address)
    return render.redirect("/admin/queue?done=deleted")
