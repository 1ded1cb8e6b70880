"""``[certificate."<id>"]``: certificates chosen by the name a client asks for (SNI).

```toml
[certificate."example"]
cert = "/etc/stalwart-py/example.com/fullchain.pem"   # the chain, leaf first (PEM)
private-key = "/etc/stalwart-py/example.com/privkey.pem"
default = true           # for clients that send no name, or one no certificate has

[certificate."other"]
cert = "/etc/stalwart-py/other.org/fullchain.pem"
private-key = "/etc/stalwart-py/other.org/privkey.pem"
```

Stalwart's key names. Every TLS handshake on every listener gets the certificate whose
names (its subjectAltName DNS names; RFC 6125 6.4.3 wildcards) match the server name the
client sent, else the ``default = true`` one, else one covering the listener's host name,
else the self-signed certificate of today. A listener's own ``tls.certificate`` and
``tls.private-key`` still win for that listener. See ``stalwart_py/certificates.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stalwart_py.config.convert import join


@dataclass(frozen=True, slots=True)
class CertificateSettings:
    """One ``[certificate."<id>"]`` table."""

    cert: Path  # the chain, leaf first (PEM)
    private_key: Path  # its private key (PEM)
    default: bool = False  # for clients that send no name, or one no certificate has


def check_certificates(conv: Any, certificates: Mapping[str, CertificateSettings]) -> None:
    """Cross-table rules the dataclass cannot state: at most one default."""
    if not isinstance(certificates, Mapping):
        return  # the table itself was invalid, and said so
    defaults = [cid for cid, settings in certificates.items() if settings.default]
    for cid in defaults[1:]:
        conv.error(
            join(join("certificate", cid), "default"),
            f'expected one default certificate at most; certificate."{defaults[0]}" is '
            "the default already",
        )
