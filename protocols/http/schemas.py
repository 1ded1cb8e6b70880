"""The JSON schemas of the API (JSON Schema 2020-12, as OpenAPI 3.1 uses them).

They appear under ``components.schemas`` in the OpenAPI document and request bodies are
validated against them (``validation.py``), so what the document says is what the server
accepts. Field names are kebab-case like the configuration's keys.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from stalwart_py import names
from stalwart_py.app_passwords import PROTOCOLS

MAX_ADDRESS = names.MAX_ADDRESS  # RFC 5321 4.5.3.1.3: a path of 256 octets less "<>"
MAX_RECIPIENTS = 1000
MIN_PASSWORD_LENGTH = 8  # directory.min-password-length's default; see components_for


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: dict[str, Any], **limits: int) -> dict[str, Any]:
    return {"type": "array", "items": items, **limits}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
BOOLEAN = {"type": "boolean"}
TIMESTAMP = {"type": "number", "description": "seconds since the Unix epoch"}
APP_PASSWORD_PROTOCOL = {"type": "string", "enum": list(PROTOCOLS)}
ADDRESS = {
    "type": "string",
    "format": "idn-email",
    "minLength": 3,
    "maxLength": MAX_ADDRESS,
    "description": "an address, local@domain (RFC 5321 4.1.2 with RFC 6531's UTF-8): a "
    "dot-atom or quoted local part of at most 64 octets, without control, format or space "
    "characters, and a domain name (IDNA 2008; kept as A-labels); 254 octets in all. An "
    "address literal ([192.0.2.1]) is an envelope address only, never an account or an alias",
}
DOMAIN_NAME = {
    "type": "string",
    "format": "idn-hostname",
    "minLength": 1,
    "maxLength": 253,
    "description": "a domain name: labels of letters, digits and hyphens of at most 63 "
    "characters, or IDN labels (IDNA 2008, kept as A-labels); the last label not all digits",
}
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
CATCH_ALL = {
    "type": "string",
    # ASCII only, so that every JSON Schema dialect reads the pattern alike; the last label
    # begins with a letter, so that it is not all digits
    "pattern": f"^@(?:{_LABEL}\\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?$",
    "maxLength": MAX_ADDRESS,
    "description": "@ and a domain name in its ASCII form (an IDN as A-labels): "
    "the catch-all of that domain",
}
PASSWORD = {
    "type": "string",
    "minLength": MIN_PASSWORD_LENGTH,
    "maxLength": 1024,
    "description": "at least directory.min-password-length characters after SASLprep (RFC "
    "4013), which is how passwords are compared; a password SASLprep refuses (control "
    "characters, for one) or maps to fewer characters (soft hyphens map to nothing) is 422",
}
OPTIONAL_LIMIT = {"type": ["integer", "null"], "minimum": 0, "description": "null: no limit"}
ADDRESSES = {"anyOf": [ADDRESS, array(ADDRESS, minItems=1, maxItems=MAX_RECIPIENTS)]}
ADDRESS_FIELD = {"type": "string", "maxLength": 4096}  # a header field: "Name <a@b>, ..."
ADDRESS_FIELDS = {"anyOf": [ADDRESS_FIELD, array(ADDRESS_FIELD, maxItems=MAX_RECIPIENTS)]}
ENVELOPE = {
    "sender": {
        "anyOf": [ADDRESS, {"type": "string", "enum": [""]}],
        "description": "the envelope sender, or empty for a null sender; "
        "with the message fields, the address of from by default",
    },
    "recipients": {
        **ADDRESSES,
        "description": "envelope recipients; with the message fields, the addresses of "
        "to, cc and bcc by default",
    },
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": obj(
        {"error": {**STRING, "description": "what went wrong, for a person"}},
        ("error",),
        closed=False,
    ),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]}}, ("status",)),
    "Readiness": obj(
        {
            "status": {"type": "string", "enum": ["ready", "not-ready"]},
            "checks": obj({"listeners": BOOLEAN, "store": BOOLEAN}, ("listeners", "store")),
        },
        ("status", "checks"),
    ),
    "Account": obj(
        {
            "address": STRING,
            "admin": BOOLEAN,
            "quota-bytes": OPTIONAL_LIMIT,
            "quota-messages": OPTIONAL_LIMIT,
            "used-bytes": COUNT,
            "used-messages": COUNT,
            "created": TIMESTAMP,
            "disabled": {**BOOLEAN, "description": "every login refused; mail still accepted"},
        },
        ("address", "admin", "quota-bytes", "quota-messages", "used-bytes", "used-messages"),
    ),
    "AccountList": obj({"accounts": array(ref("Account"))}, ("accounts",)),
    "AppPassword": obj(
        {
            "id": {**COUNT, "description": "names it in DELETE"},
            "name": STRING,
            "protocols": array(APP_PASSWORD_PROTOCOL),
            "created": TIMESTAMP,
        },
        ("id", "name", "protocols", "created"),
    ),
    "AppPasswordList": obj({"app-passwords": array(ref("AppPassword"))}, ("app-passwords",)),
    "NewAppPassword": obj(
        {
            "name": {
                **STRING,
                "minLength": 1,
                "maxLength": 64,
                "description": "what it is for, e.g. the device",
            },
            "protocols": {
                **array(APP_PASSWORD_PROTOCOL, minItems=1, maxItems=len(PROTOCOLS)),
                "description": "the mail protocols it may log in to; never HTTP",
            },
        },
        ("name", "protocols"),
    ),
    "CreatedAppPassword": obj(
        {
            "id": COUNT,
            "name": STRING,
            "protocols": array(APP_PASSWORD_PROTOCOL),
            "created": TIMESTAMP,
            "password": {
                **STRING,
                "description": "the generated password; shown this once, never again",
            },
        },
        ("id", "name", "protocols", "created", "password"),
    ),
    "TwoFactorStatus": obj(
        {
            "enabled": {**BOOLEAN, "description": "codes are asked for (RFC 6238 TOTP)"},
            "pending": {**BOOLEAN, "description": "an enrolment waits for its first code"},
            "recovery-codes-left": {**COUNT, "description": "unused recovery codes"},
        },
        ("enabled", "pending", "recovery-codes-left"),
    ),
    "TwoFactorEnrolment": obj(
        {
            "secret": {**STRING, "description": "base32, 160 bits; shown this once"},
            "uri": {**STRING, "description": "otpauth://totp/ URI for an authenticator app"},
        },
        ("secret", "uri"),
    ),
    "TwoFactorCode": obj(
        {
            "code": {
                **STRING,
                "pattern": "^[0-9]{6}$",
                "description": "the current code of the authenticator app",
            }
        },
        ("code",),
    ),
    "RecoveryCodes": obj(
        {
            "recovery-codes": {
                **array(STRING),
                "description": "10 codes, each usable once instead of a code; shown this once",
            }
        },
        ("recovery-codes",),
    ),
    "NewAccount": obj(
        {
            "address": ADDRESS,
            "password": PASSWORD,
            "admin": BOOLEAN,
            "quota-bytes": OPTIONAL_LIMIT,
            "quota-messages": OPTIONAL_LIMIT,
        },
        ("address", "password"),
    ),
    "AccountUpdate": obj(
        {
            "password": PASSWORD,
            "admin": BOOLEAN,
            "quota-bytes": OPTIONAL_LIMIT,
            "quota-messages": OPTIONAL_LIMIT,
            "disabled": {
                **BOOLEAN,
                "description": "true: refuse every login (its web sessions end), mail still "
                "accepted; false: allow them again",
            },
        }
    ),
    "Domain": obj({"name": STRING, "created": TIMESTAMP}, ("name",)),
    "DomainList": obj({"domains": array(ref("Domain"))}, ("domains",)),
    "NewDomain": obj({"name": DOMAIN_NAME}, ("name",)),
    "Alias": obj(
        {
            "address": {**STRING, "description": "local@domain, or @domain for a catch-all"},
            "targets": array(STRING),
        },
        ("address", "targets"),
    ),
    "AliasList": obj({"aliases": array(ref("Alias"))}, ("aliases",)),
    "NewAlias": obj(
        {
            "address": {"anyOf": [ADDRESS, CATCH_ALL]},
            "targets": array(ADDRESS, minItems=1, maxItems=MAX_RECIPIENTS),
        },
        ("address", "targets"),
    ),
    "Listener": obj(
        {
            "id": STRING,
            "protocol": STRING,
            "bind": array(STRING),
            "tls": {"type": "string", "enum": ["implicit", "none"]},
            "open-connections": COUNT,
            "max-connections": OPTIONAL_LIMIT,
            "enabled": {**BOOLEAN, "description": "false: suspended at run time"},
        },
        ("id", "protocol", "bind", "tls", "open-connections", "max-connections", "enabled"),
    ),
    "ListenerList": obj({"listeners": array(ref("Listener"))}, ("listeners",)),
    # GET /api/dns/{domain} (handlers/dns.py, stalwart_py/dns_records.py)
    "DnsRecord": obj(
        {
            "name": STRING,
            "type": {"type": "string", "enum": ["MX", "TXT", "SRV", "CNAME", "CAA"]},
            "value": {**STRING, "description": "the rdata; for TXT the text itself, unquoted"},
            "purpose": STRING,
            "zone-line": {**STRING, "description": "the record in zone-file syntax"},
            "status": {
                "type": "string",
                "enum": ["ok", "missing", "different", "error"],
                "description": "with check=true: what DNS says",
            },
            "found": {**array(STRING), "description": "with check=true: what DNS has there"},
        },
        ("name", "type", "value", "purpose", "zone-line"),
    ),
    "DnsReport": obj(
        {
            "domain": STRING,
            "hostname": STRING,
            "zone": {**STRING, "description": "every record as a zone file fragment"},
            "records": array(ref("DnsRecord")),
            "ok": {**BOOLEAN, "description": "with check=true: every record and PTR is ok"},
            "reverse": {
                **array(
                    obj(
                        {
                            "address": STRING,
                            "status": {
                                "type": "string",
                                "enum": ["ok", "missing", "different", "error"],
                            },
                            "ptr": array(STRING),
                            "detail": STRING,
                        },
                        ("address", "status", "ptr", "detail"),
                    )
                ),
                "description": "with check=true: FCrDNS of each address of the host name",
            },
        },
        ("domain", "hostname", "zone", "records"),
    ),
    # GET /api/certificates (handlers/certificates.py, stalwart_py/certificates.py); open to
    # the fields the ACME client adds about its renewals
    "Certificate": obj(
        {
            "id": {**STRING, "description": "the [certificate.<id>] or [acme.<id>] id"},
            "source": {"type": "string", "enum": ["file", "acme", "self-signed"]},
            "names": {**array(STRING), "description": "DNS names (subjectAltName)"},
            "subject": STRING,
            "issuer": STRING,
            "serial": {**STRING, "description": "hexadecimal"},
            "not-before": {**STRING, "format": "date-time"},
            "not-after": {**STRING, "format": "date-time"},
            "expires-in": {**INTEGER, "description": "seconds until not-after (negative: past)"},
            "fingerprint-sha256": STRING,
            "default": {**BOOLEAN, "description": "for clients whose name no certificate has"},
            "files": array(STRING),
            # ACME certificates only (stalwart_py/acme/manager.py): the renewal state
            "next-renewal": {"type": ["string", "null"], "format": "date-time"},
            "renewing": BOOLEAN,
            "failures": {**INTEGER, "description": "failed renewal attempts in a row"},
            "attempts": {**INTEGER, "description": "renewals finished since the start"},
            "last-error": {"type": ["string", "null"], "description": "the CA's error"},
            "last-error-at": {"type": ["string", "null"], "format": "date-time"},
            "last-renewal": {"type": ["string", "null"], "format": "date-time"},
        },
        # an ACME certificate not obtained yet has its renewal state only
        ("id", "source"),
        closed=False,
    ),
    "CertificateList": obj({"certificates": array(ref("Certificate"))}, ("certificates",)),
    "ReloadReport": obj(
        {
            "changed": BOOLEAN,
            "added": array(STRING),
            "removed": array(STRING),
            "rebound": array(STRING),
            "updated": array(STRING),
            "re-enabled": {
                **array(STRING),
                "description": "disabled at run time, enabled again as the file says",
            },
        },
        ("changed", "added", "removed", "rebound", "updated", "re-enabled"),
    ),
    "ReloadFailure": obj(
        {
            "error": STRING,
            "errors": array(STRING),
            "changed": {"type": "boolean", "enum": [False]},
        },
        ("error", "errors", "changed"),
    ),
    "EffectiveConfig": obj(
        {
            "file": STRING,
            "hostname": STRING,
            "server": {"type": "object"},
            "storage": {"type": "object"},
            "listeners": array(
                obj(
                    {
                        "id": STRING,
                        "protocol": STRING,
                        "bind": array(STRING),
                        "enable": BOOLEAN,
                        "settings": ref("EffectiveSettings"),
                        "peer-scopes": array(
                            obj(
                                {"peers": array(STRING), "settings": ref("EffectiveSettings")},
                                ("peers", "settings"),
                            )
                        ),
                    },
                    ("id", "protocol", "bind", "enable", "settings", "peer-scopes"),
                )
            ),
        },
        ("file", "hostname", "server", "storage", "listeners"),
    ),
    "EffectiveSettings": {
        "type": "object",
        "description": "dotted key -> its value and the layer it came from",
        "additionalProperties": obj({"value": {}, "origin": STRING}, ("value", "origin")),
    },
    "QueueEntry": obj(
        {
            "id": INTEGER,
            "from": {**STRING, "description": "the envelope sender; empty for a bounce"},
            "created": TIMESTAMP,
            "next-attempt": TIMESTAMP,
            "attempts": COUNT,
            "size": COUNT,
            "source": STRING,
            "recipients": array(
                obj(
                    {
                        "address": STRING,
                        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                        "attempts": COUNT,
                        "next-attempt": TIMESTAMP,
                        "last-error": {"type": ["string", "null"]},
                    },
                    ("address", "status", "attempts", "next-attempt", "last-error"),
                )
            ),
        },
        ("id", "from", "created", "next-attempt", "attempts", "size", "source", "recipients"),
    ),
    "QueueList": obj({"messages": array(ref("QueueEntry"))}, ("messages",)),
    "RetryResult": obj(
        {"recipients": {**COUNT, "description": "pending recipients made due now"}},
        ("recipients",),
    ),
    "Report": obj(
        {
            "id": INTEGER,
            "kind": {"type": "string", "description": "dsn (RFC 3464) or arf (RFC 5965)"},
            "received": TIMESTAMP,
            "domain": STRING,
            "from": STRING,
            "summary": {"description": "the fields of the report that matter, as parsed"},
        },
        ("id", "kind", "received", "domain", "from", "summary"),
    ),
    "ReportList": obj({"reports": array(ref("Report"))}, ("reports",)),
    "Injection": {
        "description": "a whole message (raw), or the fields to make one of: not both",
        "oneOf": [ref("RawInjection"), ref("ComposedInjection")],
    },
    "RawInjection": obj(
        {
            **ENVELOPE,
            "raw": {
                "type": "string",
                "pattern": "^[!-9;-~]+:",
                "description": "a whole RFC 5322 message, starting with a header field",
            },
        },
        ("raw", "sender", "recipients"),
    ),
    "ComposedInjection": {
        **obj(
            {
                **ENVELOPE,
                "from": ADDRESS_FIELD,
                "to": ADDRESS_FIELDS,
                "cc": ADDRESS_FIELDS,
                "bcc": {**ADDRESS_FIELDS, "description": "recipients not shown in the header"},
                "reply-to": ADDRESS_FIELDS,
                "subject": {"type": "string", "maxLength": 998},
                "text": {"type": "string", "description": "the text/plain body"},
                "html": {"type": "string", "description": "the text/html body"},
                "headers": {
                    "type": "object",
                    "description": "further header fields, name -> value",
                    "additionalProperties": {"type": "string", "maxLength": 998},
                },
            }
        ),
        "description": "address fields are RFC 5322 address lists (Name <local@domain>, ...)",
        "allOf": [
            {"anyOf": [{"required": ["text"]}, {"required": ["html"]}]},
            {"anyOf": [{"required": ["sender"]}, {"required": ["from"]}]},
            {"anyOf": [{"required": [key]} for key in ("recipients", "to", "cc", "bcc")]},
        ],
    },
    "InjectionResult": obj(
        {
            "message-id": {"type": ["string", "null"]},
            "size": COUNT,
            "accepted": COUNT,
            "failed": COUNT,
            "results": array(
                obj(
                    {
                        "recipient": STRING,
                        "ok": BOOLEAN,
                        "code": {**INTEGER, "description": "the SMTP reply code"},
                        "status": {**STRING, "description": "the RFC 3463 status code"},
                        "message": STRING,
                    },
                    ("recipient", "ok", "code", "status", "message"),
                )
            ),
        },
        ("message-id", "size", "accepted", "failed", "results"),
    ),
}


@functools.lru_cache(maxsize=8)
def components_for(min_password_length: int) -> dict[str, dict[str, Any]]:
    """COMPONENTS with the configured ``directory.min-password-length``: the document says,
    and request validation enforces, the length the directory asks for."""
    components = copy.deepcopy(COMPONENTS)
    for name in ("NewAccount", "AccountUpdate"):
        components[name]["properties"]["password"]["minLength"] = min_password_length
    return components
