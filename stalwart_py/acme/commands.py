"""The control socket's ACME commands (``stalwart-py acme status|renew``).

``acme-status`` answers every ACME certificate's renewal state; ``acme-renew`` (with ``id``,
or none for all) starts a renewal and answers at once, since an order can outlast the
control socket's per-connection timeout: the command line polls ``acme-status`` until the
``attempts`` count moves on.
"""

from __future__ import annotations

from typing import Any

from stalwart_py.acme.manager import AcmeManager
from stalwart_py.control import Answer, Command, ControlError


def acme_commands(manager: AcmeManager) -> dict[str, Command]:
    async def status(_request: dict[str, Any]) -> Answer:
        return {"acme": manager.describe()}

    async def renew(request: dict[str, Any]) -> Answer:
        wanted = request.get("id")
        if wanted is None:
            ids = list(manager.slots)
        elif isinstance(wanted, str) and wanted in manager.slots:
            ids = [wanted]
        else:
            known = ", ".join(manager.slots) or "none configured"
            raise ControlError(f'no [acme."{wanted}"] in the configuration ({known})')
        before = manager.describe()
        for acme_id in ids:
            manager.request_renewal(acme_id)
        return {"started": ids, "acme": before}

    return {"acme-status": status, "acme-renew": renew}
