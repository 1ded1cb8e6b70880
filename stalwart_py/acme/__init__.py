"""ACME (RFC 8555): certificates obtained and renewed from a CA such as Let's Encrypt.

``jws.py`` signs requests (josepy), ``client.py`` speaks the protocol (httpx), ``orders.py``
runs one issuance, ``challenges.py`` publishes HTTP-01 and TLS-ALPN-01 answers,
``schedule.py`` decides when to renew and retry, and ``manager.py`` is the renewal task in
the server's task group. Configuration: ``[acme."<id>"]`` (``stalwart_py/config/acme.py``).
"""

from stalwart_py.acme.client import AcmeClient, AcmeError, AcmeProblem
from stalwart_py.acme.manager import AcmeManager, AcmeState

__all__ = ["AcmeClient", "AcmeError", "AcmeManager", "AcmeProblem", "AcmeState"]
