"""A client of the Sendmail milter protocol (version 6): ``codec`` (sans-IO), ``client``
(the conversation over a stream), and ``MilterFilter``, the filter plugin ``type = "milter"``."""

from __future__ import annotations

from typing import ClassVar

from stalwart_py.filters.api import Filter, FilterMessage, Verdict
from stalwart_py.milter.settings import MilterSettings, MilterTimeouts


class MilterFilter(Filter):
    """A message filter that asks a milter (rspamd, OpenDKIM, OpenDMARC, clamav-milter...)."""

    name = "milter"
    settings: ClassVar[type | None] = MilterSettings

    async def check(self, message: FilterMessage) -> Verdict:
        from stalwart_py.milter.client import filter_message

        return await filter_message(self.config, message)


__all__ = ["MilterFilter", "MilterSettings", "MilterTimeouts"]
