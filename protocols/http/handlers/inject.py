"""``POST /api/inject``: a message into the one delivery pipeline, as SMTP would hand it over.

The body is JSON (``raw``, or the fields of ``compose.py``), or a whole message as
``message/rfc822`` with the envelope in the query (``?sender=a@x&recipient=b@y&recipient=...``),
which lets ``curl --data-binary @message.eml`` send any bytes as they are. The message goes
through ``Delivery.deliver`` like one received by SMTP: trace header, local mailboxes (with
Sieve) or the outbound queue, and the answer comes once it is durable, one result per recipient
with its SMTP reply code and RFC 3463 status. The body is limited by ``http.max-body-size``;
the message built from the form is held to the same limit.
"""

from __future__ import annotations

from typing import Any

from protocols.http.compose import (
    CompositionError,
    check_envelope_address,
    check_raw,
    compose,
    envelope_of,
)
from protocols.http.messages import HttpError, Request, Response, json_response
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import MAX_RECIPIENTS, ref
from stalwart_py.delivery import Envelope, Origin, Recipient

routes = RouteTable()

RAW_TYPE = "message/rfc822"


@routes.post(
    "/api/inject",
    tag="inject",
    summary="Inject a message through the delivery pipeline",
    body=ref("Injection"),
    body_types=("application/json", RAW_TYPE),
    query=(
        Param("sender", "with a message/rfc822 body: the envelope sender (empty: null sender)"),
        Param("recipient", "with a message/rfc822 body: an envelope recipient (repeatable)"),
    ),
    responses={
        200: ("delivered or queued: one result per recipient", ref("InjectionResult")),
        400: ("no message can be made of the request", ref("Error")),
    },
)
async def inject(request: Request) -> Response:
    session = request.session
    try:
        if request.content_type == RAW_TYPE:
            message, message_id = check_raw(request.body), None
            sender, recipients = _query_envelope(request)
        else:
            data: dict[str, Any] = request.data
            if "raw" in data:
                if set(data) - {"raw", "sender", "recipients"}:
                    raise CompositionError("raw: give either raw or the message fields, not both")
                try:
                    raw = data["raw"].encode()
                except UnicodeEncodeError:
                    raise CompositionError("raw: not valid Unicode text") from None
                message, message_id = check_raw(raw), None
            else:
                message, message_id = compose(data, session.server.hostname)
            sender, recipients = envelope_of(data)
    except CompositionError as exc:
        raise HttpError(400, str(exc)) from None
    limit = session.settings.max_body_size
    if len(message) > limit:
        raise HttpError(413, f"the message is larger than {limit} bytes")
    envelope = Envelope(
        sender,
        tuple(Recipient(r) for r in recipients),
        smtputf8=not (sender.isascii() and all(r.isascii() for r in recipients)),
    )
    origin = Origin(
        "HTTP",
        session.session_id,
        helo=None,
        peer=session.peer,
        tls=session.tls,
        authenticated=request.account.address if request.account else None,
        source="http",
    )
    results = await session.server.delivery.deliver(envelope, message, origin)
    accepted = sum(1 for r in results if r.ok)
    session.log.info(
        "injected %d bytes from <%s> for %d recipients: %d accepted",
        len(message),
        sender,
        len(recipients),
        accepted,
    )
    return json_response(
        200,
        {
            "message-id": message_id,
            "size": len(message),
            "accepted": accepted,
            "failed": len(results) - accepted,
            "results": [
                {
                    "recipient": r.address,
                    "ok": r.ok,
                    "code": r.code,
                    "status": r.enhanced,
                    "message": r.text,
                }
                for r in results
            ],
        },
    )


def _query_envelope(request: Request) -> tuple[str, list[str]]:
    sender = request.query_value("sender")
    if sender is None:
        raise CompositionError("sender: required in the query (sender= for a null sender)")
    if sender:
        check_envelope_address(sender, "sender")
    recipients = [
        check_envelope_address(r, "recipient") for r in request.query.get("recipient", [])
    ]
    if not recipients:
        raise CompositionError("recipient: at least one is required in the query")
    if len(recipients) > MAX_RECIPIENTS:
        raise CompositionError(f"recipient: at most {MAX_RECIPIENTS}")
    return sender, list(dict.fromkeys(recipients))
