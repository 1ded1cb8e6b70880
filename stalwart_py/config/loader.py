"""Load a configuration file and apply the one merge rule.

A listener's effective settings are the ``[server]`` table (without ``listener``, ``peer`` and
the server-wide keys) deep-merged with ``[server.listener.<id>]``; then, per connection, the
most specific matching ``peer."CIDR"`` scope of the server and then of the listener on top.
Protocol tables (``smtp.*``) follow the same rule: ``[server.smtp]`` is the default for every
smtp listener. Every combination of scopes is built and validated at load time, so a bad value
anywhere stops the server from starting (or a reload from applying) and a connection only
looks its settings up.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stalwart_py.config.acme import AcmeSettings
from stalwart_py.config.certificates import CertificateSettings, check_certificates
from stalwart_py.config.clients import MtaStsSettings
from stalwart_py.config.convert import (
    INVALID,
    Converter,
    Sourced,
    join,
    unknown_key_message,
    wrap,
)
from stalwart_py.config.errors import ConfigError, ConfigIssue, describe
from stalwart_py.config.inbound import AuthSettings, SpamSettings
from stalwart_py.config.outbound_tls import ReportSettings
from stalwart_py.config.schema import (
    LISTENER_ONLY_KEYS,
    LISTENING_SOCKET_KEYS,
    SCOPE_ONLY_KEYS,
    SERVER_ONLY_KEYS,
    DirectorySettings,
    DkimSettings,
    ListenerSettings,
    LoggingSettings,
    QueueSettings,
    ResolverSettings,
    ServerSettings,
    SieveSettings,
    StorageSettings,
)
from stalwart_py.config.types import (
    Bind,
    BindAddress,
    Hostname,
    IPAddress,
    IPNetwork,
    parse_network,
)
from stalwart_py.filters.config import FilterConfig, check_references, load_filters

# Top-level tables besides [server], each validated by its settings class.
SECTIONS: dict[str, type] = {
    "storage": StorageSettings,
    "logging": LoggingSettings,
    "directory": DirectorySettings,
    "queue": QueueSettings,
    "resolver": ResolverSettings,
    "dkim": dict[Hostname, DkimSettings],  # [dkim."example.com"]
    "auth": AuthSettings,  # sender authentication of mail from strangers (config/inbound.py)
    "spam": SpamSettings,
    "sieve": SieveSettings,
    "mta-sts": MtaStsSettings,  # the MTA-STS policy served for our domains (config/clients.py)
    "acme": dict[str, AcmeSettings],  # [acme."<id>"]: certificates from an ACME CA (config/acme.py)
    "report": ReportSettings,  # reports we send: TLS-RPT (config/outbound_tls.py)
    # certificates chosen by SNI (config/certificates.py, stalwart_py/certificates.py)
    "certificate": dict[str, CertificateSettings],
}

# A connection's scope: (index into server scopes, index into listener scopes); -1 for none.
ScopeKey = tuple[int, int]
NO_SCOPE: ScopeKey = (-1, -1)


@dataclass(frozen=True, slots=True)
class PeerScope:
    """A ``peer."CIDR"`` table of the server or of one listener."""

    network: IPNetwork
    path: str  # e.g. server.listener.smtp.peer."10.0.0.0/16"
    label: str  # the origin label of its values, e.g. [server.listener.smtp.peer."10.0.0.0/16"]


@dataclass(frozen=True, eq=False)
class ListenerConfig:
    """One ``[server.listener.<id>]`` table, with every peer-scope combination resolved."""

    id: str
    protocol: str
    bind: tuple[BindAddress, ...]
    enable: bool
    server_scopes: tuple[PeerScope, ...]  # most specific first
    listener_scopes: tuple[PeerScope, ...]
    effective: dict[ScopeKey, ListenerSettings]
    origins: dict[ScopeKey, dict[str, str]]  # key -> layer it came from, for --explain

    @property
    def settings(self) -> ListenerSettings:
        """The settings of a connection that matches no peer scope."""
        return self.effective[NO_SCOPE]

    def scope_for(self, ip: IPAddress | None) -> ScopeKey:
        if ip is None:
            return NO_SCOPE
        return (_best_scope(self.server_scopes, ip), _best_scope(self.listener_scopes, ip))

    def peer_limit(self, scope: ScopeKey) -> tuple[str, int] | None:
        """The peer-scope connection limit in force for ``scope``, with the key to count it
        under: a scope's ``max-connections`` counts every connection that the scope matches."""
        origin = self.origins[scope].get("max-connections")
        limit = self.effective[scope].max_connections
        if limit is None:
            return None
        for index, scopes in zip(scope, (self.server_scopes, self.listener_scopes), strict=True):
            if index >= 0 and origin == scopes[index].label:
                return (scopes[index].path, limit)
        return None


@dataclass(frozen=True, eq=False)
class Config:
    """A loaded, validated configuration file."""

    file: Path
    hostname: str
    server: ServerSettings
    defaults: ListenerSettings
    listeners: dict[str, ListenerConfig]
    storage: StorageSettings
    logging: LoggingSettings
    directory: DirectorySettings
    queue: QueueSettings = field(default_factory=QueueSettings)
    dkim: dict[str, DkimSettings] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)
    spam: SpamSettings = field(default_factory=SpamSettings)
    sieve: SieveSettings = field(default_factory=SieveSettings)
    resolver: ResolverSettings = field(default_factory=ResolverSettings)
    mta_sts: MtaStsSettings = field(default_factory=MtaStsSettings)
    acme: dict[str, AcmeSettings] = field(default_factory=dict)
    filters: dict[str, FilterConfig] = field(default_factory=dict)  # [filter."<id>"]
    report: ReportSettings = field(default_factory=ReportSettings)
    certificates: dict[str, CertificateSettings] = field(default_factory=dict)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # Deprecated keys and the like: the file is used, and each is logged at start and reload.
    warnings: tuple[ConfigIssue, ...] = ()


def load_config(
    path: str | os.PathLike[str],
    protocols: Mapping[str, type | None],
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate ``path``; ``protocols`` maps installed protocol names to their
    settings class (or None). Raises ConfigError with every issue found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(file), "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(str(file), "", "is not UTF-8 text")]) from None
    return parse_config(text, file, protocols, env)


ENV_PREFIX = "STALWART__"
ENV_SHORTHANDS = {"STALWART_HOSTNAME": "server.hostname"}


def environment_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Apply environment overrides to the parsed file, in place; returns key path -> variable.

    ``STALWART__SERVER__MAX_CONNECTIONS=100`` sets ``server.max-connections``: the name after
    the prefix is split at double underscores into table names, lowercased, with a single
    underscore read as the dash of our keys. The value is read as a TOML value when it is one
    (``100``, ``true``, ``["*:25", "[::]:25"]``, ``"5m"``) and as a plain string otherwise
    (``*:25``, ``mail.example.com``). ``STALWART_HOSTNAME`` is short for
    ``STALWART__SERVER__HOSTNAME``. Keys with dots or slashes (peer networks) cannot be named
    this way; they stay in the file.
    """
    applied: dict[str, str] = {}
    for variable, value in sorted(env.items()):
        if variable in ENV_SHORTHANDS:
            keys = ENV_SHORTHANDS[variable].split(".")
        elif variable.startswith(ENV_PREFIX) and len(variable) > len(ENV_PREFIX):
            keys = [
                part.lower().replace("_", "-") for part in variable[len(ENV_PREFIX) :].split("__")
            ]
        else:
            continue
        try:
            parsed: Any = tomllib.loads(f"value = {value}")["value"]
        except tomllib.TOMLDecodeError:
            parsed = value
        table = data
        for key in keys[:-1]:
            child = table.get(key)
            if not isinstance(child, dict):
                child = table[key] = {}
            table = child
        table[keys[-1]] = parsed
        applied[".".join(keys)] = variable
    return applied


def parse_config(
    text: str,
    file: Path,
    protocols: Mapping[str, type | None],
    env: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate; ``env`` (the process environment by default) may override keys
    with ``STALWART__SECTION__KEY=value`` (see ``environment_overrides``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(str(file), "", f"invalid TOML: {exc}")]) from None
    overrides = environment_overrides(data, os.environ if env is None else env)
    loader = _Loader(Converter(str(file), file.parent.resolve(), overrides), protocols)
    config = loader.load(data, file)
    if loader.conv.issues or config is None:
        raise ConfigError(loader.conv.issues)
    return config


class _Loader:
    def __init__(self, conv: Converter, protocols: Mapping[str, type | None]) -> None:
        self.conv = conv
        self.protocols = protocols
        self.warnings: list[ConfigIssue] = []

    def load(self, data: dict[str, Any], file: Path) -> Config | None:
        root = wrap(data, "", "file")
        for key, node in root.value.items():
            if key not in ("server", "filter") and key not in SECTIONS:
                self.conv.error(
                    node.path, unknown_key_message(key, ["server", "filter", *SECTIONS])
                )
        sections = {
            name: self.conv.convert(cls, root.value.get(name) or Sourced({}, name, "default"))
            for name, cls in SECTIONS.items()
        }
        server_node = self._relabel(
            root.value.get("server") or Sourced({}, "server", ""), "[server]"
        )
        if not isinstance(server_node.value, dict):
            self.conv.error("server", f"expected a table, found {describe(server_node.value)}")
            return None
        server_table = server_node.value
        defaults = {
            key: node
            for key, node in server_table.items()
            if key not in SERVER_ONLY_KEYS and key not in ("listener", "peer")
        }
        server_settings = self.conv.build(
            ServerSettings,
            Sourced({k: v for k, v in server_table.items() if k in SERVER_ONLY_KEYS}, "server", ""),
        )
        for key in LISTENER_ONLY_KEYS:
            if key in defaults:
                self.conv.error(defaults.pop(key).path, "can only be set on a listener")
        for key in SCOPE_ONLY_KEYS:
            if key in defaults:
                self.conv.error(defaults.pop(key).path, "can only be set in a peer scope")
        base_settings = self._settings(Sourced(defaults, "server", "[server]"), None, {})
        for name, node in defaults.items():
            if name in self.protocols and isinstance(node.value, dict):
                self._protocol_settings(name, node, {})
        server_scopes = self._scopes(server_table.get("peer"), "[server.peer.")
        listeners: dict[str, ListenerConfig] = {}
        listener_nodes = server_table.get("listener")
        if listener_nodes is not None and not isinstance(listener_nodes.value, dict):
            self.conv.error(listener_nodes.path, "expected a table of listeners")
        elif listener_nodes is not None:
            for listener_id, node in listener_nodes.value.items():
                label = f"[server.listener.{listener_id}]"
                listener = self._listener(
                    listener_id, self._relabel(node, label), defaults, server_scopes
                )
                if listener is not None:
                    listeners[listener_id] = listener
        self._check_bind_conflicts(listeners)
        filters = load_filters(self.conv, root.value.get("filter"))  # filters/config.py
        check_references(self.conv, filters, listeners)
        resolver = self._resolver_aliases(root, sections["resolver"], sections["queue"])
        check_certificates(self.conv, sections["certificate"])
        if base_settings is INVALID or server_settings is INVALID or INVALID in sections.values():
            return None
        return Config(
            file=file,
            hostname=base_settings.hostname,
            server=server_settings,
            defaults=base_settings,
            listeners=listeners,
            storage=sections["storage"],
            logging=sections["logging"],
            directory=sections["directory"],
            queue=sections["queue"],
            dkim=sections["dkim"],
            auth=sections["auth"],
            spam=sections["spam"],
            sieve=sections["sieve"],
            resolver=resolver,
            mta_sts=sections["mta-sts"],
            acme=sections["acme"],
            filters=filters,
            report=sections["report"],
            certificates=sections["certificate"],
            raw=data,
            warnings=tuple(self.warnings),
        )

    def _resolver_aliases(self, root: Sourced, resolver: Any, queue_settings: Any) -> Any:
        """``queue.dns.<key>`` is the deprecated spelling of ``resolver.<key>``: read it as
        that, with a warning; both at once is an error (which one would be meant?)."""
        dns = _table(_table(root).get("queue")).get("dns")
        if dns is None or not isinstance(dns.value, dict) or resolver is INVALID:
            return resolver
        written_keys = _table(root.value.get("resolver"))
        if queue_settings is INVALID:
            return resolver
        aliased: dict[str, Any] = {}
        for key, node in dns.value.items():
            if key in written_keys:
                self.conv.error(
                    node.path, f"deprecated alias of resolver.{key}, which is also set: remove it"
                )
                continue
            field_name = key.replace("-", "_")
            aliased[field_name] = getattr(queue_settings.dns, field_name)
            self.warnings.append(
                ConfigIssue(
                    self.conv.source_of(node.path),
                    node.path,
                    f"deprecated: write resolver.{key} (the one DNS resolver); read as that",
                )
            )
        return dataclasses.replace(resolver, **aliased)

    def _relabel(self, node: Sourced, origin: str) -> Sourced:
        """Label every node of a subtree with the layer it was written in (or the variable
        of the environment that set it)."""
        variable = self.conv.overrides.get(node.path)
        label = f"environment {variable}" if variable else origin
        if isinstance(node.value, dict):
            children = {k: self._relabel(v, label) for k, v in node.value.items()}
            return Sourced(children, node.path, label)
        return Sourced(node.value, node.path, label)

    def _listener(
        self,
        listener_id: str,
        node: Sourced,
        defaults: dict[str, Sourced],
        server_scopes: list[tuple[PeerScope, Sourced]],
    ) -> ListenerConfig | None:
        if not isinstance(node.value, dict):
            self.conv.error(node.path, f"expected a table, found {describe(node.value)}")
            return None
        table = dict(node.value)
        bind_node, protocol_node, enable_node = (table.pop(k, None) for k in LISTENER_ONLY_KEYS)
        scopes_node = table.pop("peer", None)
        for key in SCOPE_ONLY_KEYS:
            if key in table:
                self.conv.error(table.pop(key).path, "can only be set in a peer scope")
        protocol = self._protocol_name(protocol_node, node.path)
        binds: Any = INVALID
        if bind_node is None:
            self.conv.error(join(node.path, "bind"), "is required: the addresses to listen on")
        else:
            binds = self.conv.convert(tuple[Bind, ...], bind_node, {"one_or_many": True})
            if binds is not INVALID and not binds:
                self.conv.error(bind_node.path, "expected at least one address")
                binds = INVALID
        enable = True if enable_node is None else self.conv.convert(bool, enable_node)
        if protocol is None:
            return None
        for key, child in table.items():
            if key in self.protocols and key != protocol:
                self.conv.error(
                    child.path, f"{key} settings on a listener whose protocol is {protocol}"
                )
        base = _merge(
            Sourced(_for_protocol(defaults, self.protocols, protocol), node.path, ""),
            Sourced(table, node.path, ""),
        )
        listener_scopes = self._scopes(scopes_node, f"[server.listener.{listener_id}.peer.")
        for _scope, scope_node in listener_scopes:
            for key, child in scope_node.value.items():
                if key in self.protocols and key != protocol:
                    self.conv.error(
                        child.path, f"{key} settings on a listener whose protocol is {protocol}"
                    )
        effective: dict[ScopeKey, ListenerSettings] = {}
        origins: dict[ScopeKey, dict[str, str]] = {}
        for s_index, (_s, s_node) in [(-1, (None, None)), *enumerate(server_scopes)]:
            for l_index, (_l, l_node) in [(-1, (None, None)), *enumerate(listener_scopes)]:
                merged = base
                for scope_node in (s_node, l_node):
                    if scope_node is not None:
                        scoped = _for_protocol(scope_node.value, self.protocols, protocol)
                        merged = _merge(merged, Sourced(scoped, merged.path, ""))
                key_origins: dict[str, str] = {}
                settings = self._settings(merged, protocol, key_origins)
                if settings is INVALID:
                    return None
                effective[(s_index, l_index)] = settings
                origins[(s_index, l_index)] = key_origins
        if binds is INVALID or enable is INVALID:
            return None
        return ListenerConfig(
            id=listener_id,
            protocol=protocol,
            bind=binds,
            enable=enable,
            server_scopes=tuple(scope for scope, _ in server_scopes),
            listener_scopes=tuple(scope for scope, _ in listener_scopes),
            effective=effective,
            origins=origins,
        )

    def _protocol_name(self, node: Sourced | None, listener_path: str) -> str | None:
        if node is None:
            self.conv.error(join(listener_path, "protocol"), "is required: " + self._installed())
            return None
        name = node.value
        if not isinstance(name, str):
            self.conv.error(node.path, f"expected a protocol name, found {describe(name)}")
            return None
        if name not in self.protocols:
            self.conv.error(node.path, f'unknown protocol "{name}"; {self._installed()}')
            return None
        return name

    def _installed(self) -> str:
        names = ", ".join(sorted(self.protocols)) or "none"
        return f"installed protocols: {names}"

    def _settings(
        self, table: Sourced, protocol: str | None, origins: dict[str, str]
    ) -> ListenerSettings | Any:
        """Build ListenerSettings (and the protocol's settings) from a merged table."""
        core = {k: v for k, v in table.value.items() if k not in self.protocols}
        also_valid = [*LISTENER_ONLY_KEYS, *SERVER_ONLY_KEYS, "listener", "peer", *self.protocols]
        settings = self.conv.build(
            ListenerSettings, Sourced(core, table.path, ""), origins, also_valid
        )
        if protocol is None or settings is INVALID:
            return settings
        proto_node = table.value.get(protocol) or Sourced({}, join(table.path, protocol), "")
        proto_settings = self._protocol_settings(protocol, proto_node, origins)
        if proto_settings is INVALID:
            return INVALID
        return dataclasses.replace(settings, protocol=proto_settings)

    def _protocol_settings(self, protocol: str, node: Sourced, origins: dict[str, str]) -> Any:
        cls = self.protocols[protocol]
        if cls is None:
            if node.value:
                self.conv.error(node.path, f"protocol {protocol} takes no settings")
                return INVALID
            return None
        prefixed: dict[str, str] = {}
        settings = self.conv.build(cls, node, prefixed)
        origins.update({f"{protocol}.{key}": origin for key, origin in prefixed.items()})
        return settings

    def _scopes(self, node: Sourced | None, label: str) -> list[tuple[PeerScope, Sourced]]:
        """Parse a ``peer`` table into scopes, most specific network first."""
        if node is None:
            return []
        if not isinstance(node.value, dict):
            self.conv.error(node.path, "expected a table of networks")
            return []
        scopes = []
        for cidr, table in node.value.items():
            try:
                network = parse_network(cidr)
            except ValueError:
                self.conv.error(table.path, 'expected an IP network such as "10.0.0.0/8"')
                continue
            if not isinstance(table.value, dict):
                self.conv.error(table.path, f"expected a table, found {describe(table.value)}")
                continue
            scope_label = f'{label}"{cidr}"]'
            scope_table = self._relabel(table, scope_label)
            self._check_scope_keys(scope_table)
            scopes.append((PeerScope(network, table.path, scope_label), scope_table))
        scopes.sort(key=lambda item: -item[0].network.prefixlen)
        return scopes

    def _check_scope_keys(self, table: Sourced) -> None:
        for key in [*LISTENER_ONLY_KEYS, "peer"]:
            if key in table.value:
                self.conv.error(table.value.pop(key).path, "cannot be set in a peer scope")
        proxy = table.value.get("proxy")
        if proxy is not None:
            self.conv.error(
                proxy.path,
                "cannot be set in a peer scope: the peer is only known after the PROXY header",
            )
            del table.value["proxy"]
        socket_node = table.value.get("socket")
        if socket_node is not None and isinstance(socket_node.value, dict):
            for key in LISTENING_SOCKET_KEYS & socket_node.value.keys():
                self.conv.error(
                    socket_node.value.pop(key).path,
                    "cannot be set in a peer scope: it applies to the listening socket",
                )

    def _check_bind_conflicts(self, listeners: dict[str, ListenerConfig]) -> None:
        owners: dict[tuple[int, str, int], str] = {}
        for listener in listeners.values():
            if not listener.enable:
                continue
            for address in listener.bind:
                key = (address.family, address.host, address.port)
                other = owners.setdefault(key, listener.id)
                if other != listener.id and address.port != 0:
                    self.conv.error(
                        f"server.listener.{listener.id}.bind",
                        f"{address} is already bound by listener {other}",
                    )


def _table(node: Sourced | None) -> dict[str, Sourced]:
    """The children of a table node; none for a missing node or a value that is no table."""
    return node.value if node is not None and isinstance(node.value, dict) else {}


def _best_scope(scopes: tuple[PeerScope, ...], ip: IPAddress) -> int:
    for index, scope in enumerate(scopes):
        if ip.version == scope.network.version and ip in scope.network:
            return index
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:10.0.0.1 matches 10.0.0.0/8
    return _best_scope(scopes, mapped) if mapped is not None else -1


def _for_protocol(
    table: dict[str, Sourced], protocols: Mapping[str, type | None], protocol: str
) -> dict[str, Sourced]:
    """Drop the tables of other protocols: [server.imap] is no default for an smtp listener."""
    return {k: v for k, v in table.items() if k not in protocols or k == protocol}


def _merge(base: Sourced, top: Sourced) -> Sourced:
    """Deep-merge two tables; values in ``top`` win, tables merge key by key."""
    merged = dict(base.value)
    for key, node in top.value.items():
        below = merged.get(key)
        if below is not None and isinstance(below.value, dict) and isinstance(node.value, dict):
            merged[key] = _merge(below, node)
        else:
            merged[key] = node
    return Sourced(merged, top.path or base.path, top.origin)
