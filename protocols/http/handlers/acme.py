"""``POST /api/certificates/{id}/renew``: renew an ACME certificate now.

The renewal runs in the server's renewal task (never two orders at a time: one already
running is the one waited for); this request waits for its outcome, at most
``RENEW_TIMEOUT``, and answers the certificate's renewal state: 200 when it was renewed,
502 with the CA's error when it was not (the certificate in use stays in use).
"""

from __future__ import annotations

import anyio

from protocols.http.messages import HttpError, Request, Response, json_response
from protocols.http.router import Param, RouteTable
from protocols.http.schemas import ref

routes = RouteTable()

RENEW_TIMEOUT = 300.0
STATE = {
    "type": "object",
    "required": ["id", "next_renewal", "renewing", "failures", "last_error"],
    "properties": {
        "id": {"type": "string"},
        "next_renewal": {"type": ["string", "null"]},
        "renewing": {"type": "boolean"},
        "failures": {"type": "integer"},
        "attempts": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "last_error_at": {"type": ["string", "null"]},
        "last_renewal": {"type": ["string", "null"]},
    },
}


@routes.post(
    "/api/certificates/{id}/renew",
    tag="certificates",
    params=(Param("id", 'the id of an [acme."<id>"] section'),),
    summary="Renew an ACME certificate now and wait for the outcome",
    responses={
        200: ("renewed and installed", STATE),
        404: ("no ACME certificate of that id", ref("Error")),
        502: ("the CA refused or failed; the old certificate stays in use", STATE),
        504: ("still running after the wait; see GET /api/certificates", ref("Error")),
    },
)
async def renew_certificate(request: Request) -> Response:
    manager = getattr(request.session.server, "acme", None)
    acme_id = request.params["id"]
    if manager is None or acme_id not in manager.slots:
        raise HttpError(404, f'no [acme."{acme_id}"] in the configuration')
    with anyio.move_on_after(RENEW_TIMEOUT):
        state = await manager.renew_now(acme_id)
        body = {"id": acme_id, **state.as_dict()}
        return json_response(502 if state.last_error else 200, body)
    raise HttpError(504, "the renewal is still running; see GET /api/certificates")
