"""Mail clients that configure themselves, and the MTA-STS policy, served over HTTP.

Four documents, each generated from the listeners really bound (``stalwart_py.clients``), each
only for domains the server hosts (anything else is 404, so a stranger learns nothing about
names we do not serve):

* **Thunderbird autoconfig** (the "config-v1.1.xml" format of Thunderbird's ISPDB, as
  Thunderbird, K-9/Thunderbird mobile, Evolution and Geary read it): ``GET
  /.well-known/autoconfig/mail/config-v1.1.xml`` on the domain itself, and ``GET
  /mail/config-v1.1.xml`` on ``autoconfig.<domain>``. With ``?emailaddress=`` the domain is the
  address's and the username the address (our accounts log in with their address); without it
  (Thunderbird mobile and Geary omit it) the domain comes from the Host and the username is
  Thunderbird's placeholder ``%EMAILADDRESS%``, which the client fills in. Every endpoint is
  listed, implicit TLS first (``socketType`` SSL), then STARTTLS; the client takes the first.
* **Microsoft Autodiscover**, the "POX" v1 protocol Outlook for Windows and many others speak:
  ``POST /autodiscover/autodiscover.xml`` (in any letter case: Outlook sends
  ``/Autodiscover/Autodiscover.xml``) with an XML request naming ``EMailAddress``, answered with
  the Outlook response schema (2006a): one ``Protocol`` each for IMAP and SMTP, the preferred
  endpoint. Implicit TLS is ``<Encryption>SSL</Encryption>`` and STARTTLS
  ``<Encryption>TLS</Encryption>``: Outlook reads "TLS" as STARTTLS, so an implicit-TLS port is
  never described that way. The request is read with defusedxml (no DTDs, no entities) and at
  most ``MAX_AUTODISCOVER_BODY`` bytes.
* **Apple configuration profile**: ``GET /apple/<address>.mobileconfig``, a plist (plistlib)
  with one ``com.apple.mail.managed`` payload for the address. Like mox's autoconfig
  documents and Stalwart's, it is public: it holds no password (the device asks for it) and
  says nothing autoconfig does not; it does not reveal whether the account exists, only the
  domain must be ours. The profile is unsigned (iOS shows it as "Not Verified").
* **MTA-STS policy** (RFC 8461 3.2): ``GET /.well-known/mta-sts.txt`` on ``mta-sts.<domain>``,
  from ``[mta-sts]``; sending servers fetch it over HTTPS, so this listener needs TLS (and a
  certificate for that name) to be of use to them.

These are not API routes (they depend on the Host, they speak XML): ``match`` picks them out
before the router, so the OpenAPI document stays the API's.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from protocols.http.messages import HttpError, Request, Response, decode_segment
from stalwart_py import clients, names
from stalwart_py.clients import Endpoint

Handler = Callable[[Request], Awaitable[Response]]

THUNDERBIRD_PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"
MTA_STS_PATH = "/.well-known/mta-sts.txt"
APPLE_PREFIX, APPLE_SUFFIX = "/apple/", ".mobileconfig"
MAX_AUTODISCOVER_BODY = 16 * 1024  # a real request is under 1 KB
XML_TYPE = "application/xml; charset=utf-8"
AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
PROFILE_NAMESPACE = uuid.UUID("1b0d3e57-5f4c-4a55-9a43-7e0b7c3a2d10")  # stable profile UUIDs


def match(request: Request) -> tuple[str, Handler] | None:
    """The handler of a client-setup request, with its metrics label; None for the rest."""
    path = request.path
    if path.lower() == AUTODISCOVER_PATH:
        return f"POST {AUTODISCOVER_PATH}", _only("POST", autodiscover)
    if path == THUNDERBIRD_PATHS[0] or (
        path == THUNDERBIRD_PATHS[1] and _host(request).startswith("autoconfig.")
    ):
        return f"GET {path}", _only("GET", thunderbird)
    if path == MTA_STS_PATH:
        return f"GET {MTA_STS_PATH}", _only("GET", mta_sts)
    if path.startswith(APPLE_PREFIX) and path.endswith(APPLE_SUFFIX) and path.count("/") == 2:
        return f"GET {APPLE_PREFIX}{{address}}{APPLE_SUFFIX}", _only("GET", apple_profile)
    return None


def _only(method: str, handler: Handler) -> Handler:
    async def checked(request: Request) -> Response:
        allowed = {method, "HEAD"} if method == "GET" else {method}
        if request.method not in allowed:
            allow = ", ".join(sorted(allowed))
            raise HttpError(
                405, f"{request.method} is not allowed here", headers=[("Allow", allow)]
            )
        return await handler(request)

    checked.__name__ = handler.__name__
    return checked


def _host(request: Request) -> str:
    """The Host's name (RFC 9110 7.2), lower case, without port or final dot."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        return ""  # an IP literal names no domain
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


async def _hosted(request: Request, text: str) -> str:
    """``text`` as a domain name the server hosts, else 404."""
    try:
        domain = names.domain(text)
    except ValueError:
        raise HttpError(404, "not a domain served here") from None
    if not await request.session.server.directory.is_local_domain(domain):
        raise HttpError(404, "not a domain served here")
    return domain


async def _address(request: Request, text: str) -> tuple[str, str]:
    """``text`` as a mailbox of a hosted domain: (address, domain); else 400 or 404."""
    try:
        address = names.mailbox(text.strip())
    except ValueError:
        raise HttpError(400, "not an email address") from None
    return address, await _hosted(request, address.rpartition("@")[2])


def _endpoints(request: Request) -> list[Endpoint]:
    server = request.session.server
    return clients.endpoints(server.config, server.listeners)


# -- Thunderbird ----------------------------------------------------------------------------

SOCKET_TYPES = {"tls": "SSL", "starttls": "STARTTLS"}
SERVER_TYPES = {"imap": ("incomingServer", "imap"), "pop3": ("incomingServer", "pop3")}


async def thunderbird(request: Request) -> Response:
    given = request.query_value("emailaddress")
    if given:
        address, domain = await _address(request, given)
        username = address
    else:
        host = _host(request)
        domain = await _hosted(request, host.removeprefix("autoconfig."))
        username = "%EMAILADDRESS%"
    return Response(200, thunderbird_xml(domain, username, _endpoints(request)), XML_TYPE)


def thunderbird_xml(domain: str, username: str, found: list[Endpoint]) -> bytes:
    """The clientConfig document: incoming servers first, then outgoing (the format's order)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    for tag, text in (("domain", domain), ("displayName", domain), ("displayShortName", domain)):
        ET.SubElement(provider, tag).text = text
    ordered = [e for e in found if e.service in SERVER_TYPES] + [
        e for e in found if e.service == "submission"
    ]
    for endpoint in ordered:
        tag, kind = SERVER_TYPES.get(endpoint.service, ("outgoingServer", "smtp"))
        server = ET.SubElement(provider, tag, type=kind)
        ET.SubElement(server, "hostname").text = endpoint.host
        ET.SubElement(server, "port").text = str(endpoint.port)
        ET.SubElement(server, "socketType").text = SOCKET_TYPES[endpoint.security]
        ET.SubElement(server, "authentication").text = "password-cleartext"  # under TLS
        ET.SubElement(server, "username").text = username
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# -- Outlook Autodiscover (POX) ---------------------------------------------------------------


async def autodiscover(request: Request) -> Response:
    if len(request.body) > MAX_AUTODISCOVER_BODY:
        raise HttpError(413, f"an Autodiscover request is at most {MAX_AUTODISCOVER_BODY} bytes")
    email, schema = parse_autodiscover(request.body)
    if schema is not None and schema != OUTLOOK_SCHEMA:
        # ActiveSync (mobilesync) and other schemas: we speak only the Outlook one.
        return Response(200, autodiscover_error(600, "Invalid Request"), XML_TYPE)
    address, _domain = await _address(request, email)
    return Response(200, autodiscover_xml(address, _endpoints(request)), XML_TYPE)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_autodiscover(body: bytes) -> tuple[str, str | None]:
    """(EMailAddress, AcceptableResponseSchema or None) of a POX request; 400 when it is not
    one. Namespaces are matched by local name, as clients differ in the one they send."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError):
        raise HttpError(400, "the body is not an Autodiscover XML request") from None
    request = next((c for c in root if _local(c.tag) == "Request"), None)
    if _local(root.tag) != "Autodiscover" or request is None:
        raise HttpError(400, "expected <Autodiscover><Request>")
    fields = {_local(child.tag): (child.text or "").strip() for child in request}
    if not fields.get("EMailAddress"):
        raise HttpError(400, "the request has no EMailAddress")
    return fields["EMailAddress"], fields.get("AcceptableResponseSchema") or None


def autodiscover_xml(address: str, found: list[Endpoint]) -> bytes:
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_SCHEMA)
    account = ET.SubElement(response, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    for service, kind in (("imap", "IMAP"), ("pop3", "POP3"), ("submission", "SMTP")):
        endpoint = clients.best(found, service)  # type: ignore[arg-type]
        if endpoint is None:
            continue
        protocol = ET.SubElement(account, "Protocol")
        for tag, text in (
            ("Type", kind),
            ("Server", endpoint.host),
            ("Port", str(endpoint.port)),
            ("LoginName", address),
            ("DomainRequired", "off"),
            ("SPA", "off"),  # no NTLM: the password goes over TLS
            ("SSL", "on"),  # TLS either way; Encryption says which kind
            ("Encryption", "SSL" if endpoint.security == "tls" else "TLS"),
            ("AuthRequired", "on"),
        ):
            ET.SubElement(protocol, tag).text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def autodiscover_error(code: int, message: str) -> bytes:
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE)
    response = ET.SubElement(root, "Response")
    error = ET.SubElement(response, "Error")
    ET.SubElement(error, "ErrorCode").text = str(code)
    ET.SubElement(error, "Message").text = message
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# -- Apple configuration profile ------------------------------------------------------------


async def apple_profile(request: Request) -> Response:
    segment = request.path[len(APPLE_PREFIX) : -len(APPLE_SUFFIX)]
    try:
        text = decode_segment(segment)
    except UnicodeDecodeError:
        raise HttpError(400, "not an email address") from None
    address, _domain = await _address(request, text)
    body = apple_profile_plist(address, _endpoints(request))
    if body is None:
        raise HttpError(404, "the server has no IMAP and submission endpoints to describe")
    disposition = f'attachment; filename="{address.replace(chr(34), "")}.mobileconfig"'
    return Response(
        200, body, "application/x-apple-aspen-config", [("Content-Disposition", disposition)]
    )


def apple_profile_plist(address: str, found: list[Endpoint]) -> bytes | None:
    """A configuration profile with one Mail payload; None without IMAP or submission."""
    incoming, outgoing = clients.best(found, "imap"), clients.best(found, "submission")
    if incoming is None or outgoing is None:
        return None
    identifier = ".".join(reversed(address.rpartition("@")[2].split("."))) + ".mail"
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.account",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, "mail:" + address)).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerHostName": incoming.host,
        "IncomingMailServerPortNumber": incoming.port,
        # iOS and macOS start TLS on the port as given: implicit on 993, STARTTLS on 143
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerUsername": address,
        "OutgoingMailServerHostName": outgoing.host,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, "profile:" + address)).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [mail],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# -- MTA-STS --------------------------------------------------------------------------------


async def mta_sts(request: Request) -> Response:
    host = _host(request)
    if not host.startswith("mta-sts."):
        raise HttpError(404, "the MTA-STS policy is served on mta-sts.<domain>")
    await _hosted(request, host.removeprefix("mta-sts."))
    policy = clients.mta_sts_policy(request.session.server.config)
    return Response(200, policy.encode(), "text/plain; charset=utf-8")
