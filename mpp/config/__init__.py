"""Configuration: TOML in, validated pydantic models out, or a ConfigError that names the
file, the key and what is allowed. Nothing past this module sees raw TOML.

Secrets are referenced (password_env / password_file), never written in the file, and are
read only when a connection needs them, so read-only commands such as `mpp status` work for
an operator who cannot see the monitoring password.

Rooms: values.py (durations, listen addresses, the error), pools.py (a pool and its nodes),
sections.py (the daemon-wide sections), schema.py (the whole file, secrets' readers),
loading.py (TOML -> Config with named errors), spec.py (Config -> the logic's PoolSpec).
"""

from mpp.config.loading import default_path, load, parse
from mpp.config.pools import HooksConfig, NodeConfig, PoolConfig
from mpp.config.schema import Config
from mpp.config.sections import (
    AgentSection,
    ApiSection,
    EmailTarget,
    EtcdLocation,
    EtcdSection,
    MppSection,
    NotifySection,
    RouterSection,
    WebhookTarget,
)
from mpp.config.values import DEFAULT_CONFIG, ConfigError, Duration, Listen, parse_duration

__all__ = [
    "DEFAULT_CONFIG",
    "AgentSection",
    "ApiSection",
    "Config",
    "ConfigError",
    "Duration",
    "EmailTarget",
    "EtcdLocation",
    "EtcdSection",
    "HooksConfig",
    "Listen",
    "MppSection",
    "NodeConfig",
    "NotifySection",
    "PoolConfig",
    "RouterSection",
    "WebhookTarget",
    "default_path",
    "load",
    "parse",
    "parse_duration",
]
