"""``check-config --explain``: every effective value of every listener and where it came from."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from stalwart_py.config.convert import toml_key
from stalwart_py.config.loader import NO_SCOPE, Config, ListenerConfig, ScopeKey


def flatten(settings: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted.key, value)`` for every leaf of a settings dataclass."""
    for field in dataclasses.fields(settings):
        if not field.metadata.get("toml", True):
            continue
        value = getattr(settings, field.name)
        key = prefix + toml_key(field)
        if dataclasses.is_dataclass(value):
            yield from flatten(value, key + ".")
        elif (
            isinstance(value, dict)
            and value
            and all(dataclasses.is_dataclass(v) for v in value.values())
        ):
            for name, item in value.items():
                yield from flatten(item, f'{key}."{name}".')
        else:
            yield key, value


def render_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {render_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value) + '"'


def _rows(listener: ListenerConfig, scope: ScopeKey) -> dict[str, tuple[Any, str]]:
    """Every effective key of a listener for one peer scope: ``key -> (value, origin)``."""
    settings = listener.effective[scope]
    origins = listener.origins[scope]
    rows = {}
    for key, value in flatten(settings):
        if key == "allow" and scope == NO_SCOPE:
            continue
        rows[key] = (value, origins.get(key, "default"))
    if settings.protocol is not None and dataclasses.is_dataclass(settings.protocol):
        for key, value in flatten(settings.protocol, listener.protocol + "."):
            rows[key] = (value, origins.get(key, "default"))
    return rows


def _lines(listener: ListenerConfig, scope: ScopeKey) -> dict[str, tuple[str, str]]:
    return {
        key: (render_value(value), origin)
        for key, (value, origin) in _rows(listener, scope).items()
    }


def _scope_names(listener: ListenerConfig, scope: ScopeKey) -> list[str]:
    names = []
    if scope[0] >= 0:
        names.append(f'server peer "{listener.server_scopes[scope[0]].network}"')
    if scope[1] >= 0:
        names.append(f'listener peer "{listener.listener_scopes[scope[1]].network}"')
    return names


def explain(config: Config) -> str:
    """Render the effective settings of every listener, one key per line with its origin."""
    out = [f"# {config.file}", f"hostname = {render_value(config.hostname)}"]
    server = config.server
    out.append(f"server max-connections = {render_value(server.max_connections)}")
    out.append(f"server shutdown-timeout = {render_value(server.shutdown_timeout)}")
    out.append(f"storage data-dir = {render_value(str(config.storage.data_dir))}")
    for listener in config.listeners.values():
        state = "enabled" if listener.enable else "disabled (enable = false)"
        binds = ", ".join(str(b) for b in listener.bind)
        out.append("")
        out.append(f"[listener {listener.id}] protocol {listener.protocol}, bind {binds}, {state}")
        base = _lines(listener, NO_SCOPE)
        width = max((len(k) + len(v) for k, (v, _) in base.items()), default=0) + 5
        for key, (value, origin) in base.items():
            out.append(f"  {key} = {value}".ljust(width) + f"  # {origin}")
        for scope in listener.effective:
            if scope == NO_SCOPE:
                continue
            names = _scope_names(listener, scope)
            rows = _lines(listener, scope)
            changed = {k: v for k, v in rows.items() if base.get(k) != v}
            if not changed:
                continue
            out.append(f"  for peers matching {' and '.join(names)}:")
            for key, (value, origin) in changed.items():
                out.append(f"    {key} = {value}".ljust(width + 2) + f"  # {origin}")
    return "\n".join(out) + "\n"


def json_value(value: Any) -> Any:
    """A settings value as JSON: durations in seconds, sizes in bytes, paths and networks as
    text, tuples as lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


def explain_json(config: Config) -> dict[str, Any]:
    """What ``explain`` prints, as a JSON document: every listener's effective settings with
    the origin of each value, and for each peer scope the values that differ there."""
    server = config.server
    listeners = []
    for listener in config.listeners.values():
        base = _rows(listener, NO_SCOPE)
        scopes = []
        for scope in listener.effective:
            if scope == NO_SCOPE:
                continue
            changed = {
                key: row for key, row in _rows(listener, scope).items() if base.get(key) != row
            }
            if changed:
                scopes.append(
                    {"peers": _scope_names(listener, scope), "settings": _json_rows(changed)}
                )
        listeners.append(
            {
                "id": listener.id,
                "protocol": listener.protocol,
                "bind": [str(b) for b in listener.bind],
                "enable": listener.enable,
                "settings": _json_rows(base),
                "peer-scopes": scopes,
            }
        )
    return {
        "file": str(config.file),
        "hostname": config.hostname,
        "server": {
            "max-connections": server.max_connections,
            "shutdown-timeout": json_value(server.shutdown_timeout),
            "certificate-watch": json_value(server.certificate_watch),
        },
        "storage": {"data-dir": str(config.storage.data_dir), "backend": config.storage.backend},
        "listeners": listeners,
    }


def _json_rows(rows: dict[str, tuple[Any, str]]) -> dict[str, dict[str, Any]]:
    return {
        key: {"value": json_value(value), "origin": origin} for key, (value, origin) in rows.items()
    }
