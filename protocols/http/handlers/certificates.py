"""``GET /api/certificates``: every certificate the server knows and serves.

The ``[certificate."<id>"]`` files, the certificates the ACME client installed and the
self-signed ones in use, each with its names, issuer, validity and where it came from
(``stalwart_py/certificates.py`` ``CertificateStore.describe``). Keys are kebab-case like
the rest of the API; what the ACME client adds to an entry (its renewal state) appears beside.
"""

from __future__ import annotations

from typing import Any

from protocols.http.messages import Request, Response, json_response
from protocols.http.router import RouteTable
from protocols.http.schemas import ref

routes = RouteTable()


def _kebab(entry: dict[str, Any]) -> dict[str, Any]:
    return {key.replace("_", "-"): value for key, value in entry.items()}


@routes.get(
    "/api/certificates",
    tag="certificates",
    summary="The certificates the server serves, chosen by SNI, with their validity",
    responses={200: ("every certificate known", ref("CertificateList"))},
)
async def list_certificates(request: Request) -> Response:
    # the ACME client's renewal state is merged in by the store (CertificateStore.add_details)
    entries = request.session.server.certificates.describe()
    return json_response(200, {"certificates": [_kebab(entry) for entry in entries]})
