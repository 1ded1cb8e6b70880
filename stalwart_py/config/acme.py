"""``[acme."<id>"]``: certificates obtained and renewed from an ACME CA (RFC 8555), with
Stalwart's key names.

```toml
[acme."letsencrypt"]
directory = "https://acme-v02.api.letsencrypt.org/directory"
contact = ["postmaster@example.com"]      # mailto: is added when absent
domains = ["mail.example.com", "autoconfig.example.com"]
challenge = "tls-alpn-01"                 # or "http-01"
renew-before = "30d"                      # before the certificate's notAfter
# ca-file = "/etc/ssl/private-ca.pem"     # trust anchors of a private ACME server (step-ca)
# eab.kid = "..."                         # external account binding (ZeroSSL)
# eab.hmac-key = "..."                    # base64url, as the CA hands it out
```

The certificate is installed under the id (``<data-dir>/certificates/<id>``) and takes part
in SNI choice like a ``[certificate."<id>"]`` one; see ``stalwart_py/acme/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from stalwart_py.config.types import Duration, Hostname, ValueParser


def _directory_url(raw: object) -> str:
    if not isinstance(raw, str) or not raw.startswith("https://") or len(raw) < 9:
        raise ValueError("ACME runs over HTTPS (RFC 8555 6.1)")
    return raw


def _contact(raw: object) -> str:
    if not isinstance(raw, str) or "@" not in raw or any(c.isspace() for c in raw):
        raise ValueError
    return raw if raw.startswith("mailto:") else f"mailto:{raw}"


DirectoryURL = Annotated[str, ValueParser(_directory_url, "an https:// URL of an ACME directory")]
Contact = Annotated[str, ValueParser(_contact, "an email address (or a mailto: URL)")]


@dataclass(frozen=True, slots=True)
class EabSettings:
    """``eab.*``: external account binding (RFC 8555 7.3.4), as ZeroSSL needs."""

    kid: str  # the key id, as the CA hands it out
    hmac_key: str  # base64url, as the CA hands it out


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    """One ``[acme."<id>"]`` table: see the module docstring."""

    directory: DirectoryURL  # the CA's directory URL
    # The names of the certificate (no wildcards: they need DNS-01).
    domains: tuple[Hostname, ...] = field(metadata={"one_or_many": True})
    # mailto: is added when absent
    contact: tuple[Contact, ...] = field(default=(), metadata={"one_or_many": True})
    # How the CA checks that we control the names: "tls-alpn-01" (RFC 8737), a TLS handshake
    # to port 443 answered by a TLS listener there; "http-01", a GET of
    # /.well-known/acme-challenge/<token> on port 80 answered by an HTTP listener there.
    challenge: Literal["tls-alpn-01", "http-01"] = "tls-alpn-01"
    renew_before: Duration = 30 * 86400.0  # before the certificate's notAfter
    ca_file: Path | None = None  # trust anchors of a private ACME server (step-ca)
    eab: EabSettings | None = None

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("domains needs at least one name")
        if any(d.startswith("*.") for d in self.domains):
            raise ValueError("wildcard names need DNS-01, which is not supported")
