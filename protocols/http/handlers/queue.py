"""The outbound queue (list, read, retry now, delete) and the received DSN/ARF reports."""

from __future__ import annotations

import json
from typing import Any

from protocols.http.messages import (
    HttpError,
    Request,
    Response,
    bounded_int,
    json_response,
    no_content,
)
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import ref
from stalwart_py.store import NotFound, QueueEntry, Report

routes = RouteTable()

MAX_QUEUE_ID = 2**63 - 1  # SQLite's largest INTEGER
QUEUE_ID = Param(
    "id",
    "the queued message's id",
    {"type": "integer", "minimum": 1, "maximum": MAX_QUEUE_ID},
)
LIMIT = Param(
    "limit", "how many at most (default 100)", {"type": "integer", "minimum": 1, "maximum": 10000}
)


def entry_json(entry: QueueEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "from": entry.mail_from,
        "created": entry.created,
        "next-attempt": entry.next_attempt,
        "attempts": entry.attempts,
        "size": entry.size,
        "source": entry.source,
        "recipients": [
            {
                "address": r.address,
                "status": r.status,
                "attempts": r.attempts,
                "next-attempt": r.next_attempt,
                "last-error": r.last_error,
            }
            for r in entry.recipients
        ],
    }


def report_json(report: Report) -> dict[str, Any]:
    try:
        summary = json.loads(report.summary)
    except ValueError:
        summary = report.summary
    return {
        "id": report.id,
        "kind": report.kind,
        "received": report.received,
        "domain": report.domain,
        "from": report.mail_from,
        "summary": summary,
    }


def _queue_id(request: Request) -> int:
    text = request.params["id"]
    queue_id = bounded_int(text, 1, MAX_QUEUE_ID)
    if queue_id is None:
        raise HttpError(404, f"no queued message {text}")
    return queue_id


@routes.get(
    "/api/queue",
    tag="queue",
    query=(LIMIT,),
    summary="List the queued messages that have a pending recipient, oldest first",
    responses={200: ("queued messages", ref("QueueList"))},
)
async def list_queue(request: Request) -> Response:
    limit = request.query_int("limit", 100, 1, 10000)
    entries = await request.session.server.store.queue_entries(limit=limit)
    return json_response(200, {"messages": [entry_json(e) for e in entries]})


@routes.get(
    "/api/queue/{id}",
    tag="queue",
    params=(QUEUE_ID,),
    summary="Read a queued message's envelope and recipients",
    responses={200: ("the queued message", ref("QueueEntry"))},
)
async def get_queue_entry(request: Request) -> Response:
    queue_id = _queue_id(request)
    entry = await request.session.server.store.queue_entry(queue_id)
    if entry is None:
        raise HttpError(404, f"no queued message {queue_id}")
    return json_response(200, entry_json(entry))


@routes.post(
    "/api/queue/retry",
    tag="queue",
    summary="Make every pending recipient of the queue due now",
    responses={200: ("how many recipients", ref("RetryResult"))},
)
async def retry_all(request: Request) -> Response:
    count = await request.session.server.store.retry_queue(None)
    request.session.log.info("queue: %d recipients made due now", count)
    return json_response(200, {"recipients": count})


@routes.post(
    "/api/queue/{id}/retry",
    tag="queue",
    params=(QUEUE_ID,),
    summary="Make a queued message's pending recipients due now",
    responses={200: ("how many recipients", ref("RetryResult"))},
)
async def retry_entry(request: Request) -> Response:
    queue_id = _queue_id(request)
    store = request.session.server.store
    if await store.queue_entry(queue_id) is None:
        raise HttpError(404, f"no queued message {queue_id}")
    count = await store.retry_queue(queue_id)
    request.session.log.info("queue: message %d, %d recipients due now", queue_id, count)
    return json_response(200, {"recipients": count})


@routes.delete(
    "/api/queue/{id}",
    tag="queue",
    params=(QUEUE_ID,),
    summary="Delete a queued message without a bounce",
    responses={204: ("deleted", None)},
)
async def delete_queue_entry(request: Request) -> Response:
    queue_id = _queue_id(request)
    try:
        await request.session.server.store.delete_queue_entry(queue_id)
    except NotFound:
        raise HttpError(404, f"no queued message {queue_id}") from None
    who = request.account.address if request.account else "?"
    request.session.log.info("queue: message %d deleted by %s", queue_id, who)
    return no_content()


@routes.get(
    "/api/reports",
    tag="queue",
    query=(LIMIT,),
    summary="The delivery status (DSN) and feedback (ARF) reports received, newest first",
    responses={200: ("reports", ref("ReportList"))},
)
async def list_reports(request: Request) -> Response:
    limit = request.query_int("limit", 100, 1, 10000)
    reports = await request.session.server.store.list_reports(limit)
    return json_response(200, {"reports": [report_json(r) for r in reports]})
