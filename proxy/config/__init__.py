"""The YAML config, parsed once into frozen dataclasses.

:func:`load_config` reads a file and returns a :class:`Config`, or raises :class:`ConfigError`
carrying every problem found as ``FILE:LINE: message``, each naming the key and the value.
"""

from proxy.config.load import load_config, parse_config
from proxy.config.types import (
    Chain,
    Client,
    Config,
    ConfigError,
    Limits,
    Listen,
    Member,
    Quota,
    ResponderConf,
    Rotation,
    Store,
    Tracing,
)

__all__ = [
    "Chain",
    "Client",
    "Config",
    "ConfigError",
    "Limits",
    "Listen",
    "Member",
    "Quota",
    "ResponderConf",
    "Rotation",
    "Store",
    "Tracing",
    "load_config",
    "parse_config",
]
