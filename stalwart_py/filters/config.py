"""``[filter."<id>"]`` tables and the discovery of filter plugins.

::

    [filter."rspamd"]
    type = "milter"               # the filter plugin (entry point in stalwart_py.filters)
    enable = true
    on-error = "tempfail"         # the filter failed or timed out: 451 4.7.1; "accept": let it by
    time-limit = "60s"            # the most one message may spend in this filter
    hostname = "127.0.0.1"        # ... and the type's own keys (milter: docs/filters.md)
    port = 11332

    [server.listener.smtp]
    smtp.filters = ["rspamd"]     # per listener, by the one merge rule ([server.smtp] for all)

The common keys are validated here, the type's own keys by its settings dataclass; a listener
naming a filter that is not configured is an error at load.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any, Literal

from stalwart_py.config.convert import INVALID, Converter, Sourced, toml_key, unknown_key_message
from stalwart_py.config.types import Duration
from stalwart_py.filters.api import Filter

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "stalwart_py.filters"


@dataclass(frozen=True, slots=True)
class FilterSettings:
    """The keys every ``[filter."<id>"]`` table has, whatever its type."""

    type: str = "milter"  # the filter plugin (an entry point in stalwart_py.filters)
    enable: bool = True  # false: listeners naming it skip it
    # The filter failed (down, a protocol error, over its time): "tempfail" answers 451 4.7.1
    # and nothing goes through unfiltered; "accept" logs a warning and goes on as if accepted.
    on_error: Literal["tempfail", "accept"] = "tempfail"
    # The most one message may spend in this filter, whatever the filter's own timeouts.
    time_limit: Duration = 60.0


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """One configured filter: its id, the common keys and its type's own settings."""

    id: str
    common: FilterSettings
    settings: Any  # the type's settings dataclass, or None


COMMON_KEYS = frozenset(toml_key(f) for f in dataclasses.fields(FilterSettings))


def discover_filters() -> dict[str, type[Filter]]:
    """Every filter class registered under ``stalwart_py.filters`` (a plugin that fails to
    load is logged and left out; a table naming it then fails with what is installed)."""
    found: dict[str, type[Filter]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls: Any = entry.load()
        except Exception:
            log.exception("filter plugin %s (%s) failed to load", entry.name, entry.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Filter)):
            log.error("filter plugin %s (%s) is not a Filter subclass", entry.name, entry.value)
            continue
        found[getattr(cls, "name", entry.name)] = cls
    return found


def load_filters(conv: Converter, node: Sourced | None) -> dict[str, FilterConfig]:
    """Validate the ``[filter.*]`` tables (issues go to ``conv``)."""
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        conv.error(node.path, "expected a table of filters")
        return {}
    classes: dict[str, type[Filter]] | None = None
    result: dict[str, FilterConfig] = {}
    for filter_id, table in node.value.items():
        if not isinstance(table.value, dict):
            conv.error(table.path, "expected a table")
            continue
        common_table = {k: v for k, v in table.value.items() if k in COMMON_KEYS}
        own_table = {k: v for k, v in table.value.items() if k not in COMMON_KEYS}
        common = conv.build(FilterSettings, Sourced(common_table, table.path, table.origin))
        if common is INVALID:
            continue
        if classes is None:
            classes = discover_filters()
        cls = classes.get(common.type)
        if cls is None:
            installed = ", ".join(sorted(classes)) or "none"
            conv.error(
                f"{table.path}.type", f"no filter type {common.type!r} (installed: {installed})"
            )
            continue
        settings = None
        if cls.settings is not None:
            settings = conv.build(
                cls.settings, Sourced(own_table, table.path, table.origin), also_valid=COMMON_KEYS
            )
            if settings is INVALID:
                continue
        elif own_table:
            for key, child in own_table.items():
                conv.error(child.path, unknown_key_message(key, COMMON_KEYS))
            continue
        result[filter_id] = FilterConfig(filter_id, common, settings)
    return result


def check_references(conv: Converter, filters: dict[str, FilterConfig], listeners: Any) -> None:
    """Every name in a listener's ``<protocol>.filters`` must be a ``[filter."<id>"]``."""
    for listener in listeners.values():
        for settings in listener.effective.values():
            names = getattr(settings.protocol, "filters", ())
            for name in names:
                if name not in filters:
                    conv.error(
                        f"server.listener.{listener.id}.{listener.protocol}.filters",
                        f"no [filter.{name}] table (configured: {', '.join(filters) or 'none'})",
                    )
