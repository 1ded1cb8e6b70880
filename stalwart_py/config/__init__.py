"""Configuration: TOML loading, the merge rule, validation and ConfigError.

See ``loader.py`` for the merge rule, ``schema.py`` for the core keys and ``convert.py`` for
how a settings dataclass maps to TOML keys.
"""

from stalwart_py.config.errors import ConfigError, ConfigIssue
from stalwart_py.config.explain import explain, explain_json
from stalwart_py.config.loader import (
    NO_SCOPE,
    Config,
    ListenerConfig,
    PeerScope,
    ScopeKey,
    load_config,
    parse_config,
)
from stalwart_py.config.schema import (
    AuthCacheSettings,
    DirectorySettings,
    ListenerSettings,
    LoggingSettings,
    ProxySettings,
    ServerSettings,
    SocketSettings,
    StorageSettings,
    ThrottleSettings,
    TLSSettings,
)
from stalwart_py.config.types import (
    BindAddress,
    Duration,
    FileMode,
    Hostname,
    IPAddress,
    IPNetwork,
    Network,
    Range,
    Size,
    ValueParser,
)

__all__ = [
    "NO_SCOPE",
    "AuthCacheSettings",
    "BindAddress",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DirectorySettings",
    "Duration",
    "FileMode",
    "Hostname",
    "IPAddress",
    "IPNetwork",
    "ListenerConfig",
    "ListenerSettings",
    "LoggingSettings",
    "Network",
    "PeerScope",
    "ProxySettings",
    "Range",
    "ScopeKey",
    "ServerSettings",
    "Size",
    "SocketSettings",
    "StorageSettings",
    "TLSSettings",
    "ThrottleSettings",
    "ValueParser",
    "explain",
    "explain_json",
    "load_config",
    "parse_config",
]
