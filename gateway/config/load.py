"""The gateway's TOML configuration: parsed and validated once, then immutable.

``load_config(path)`` / ``config_from_string(text)`` return a ``Config`` or raise ``ConfigError``
naming the key (``mqtt.port``) and the fix. Validation has two passes: each section on its own
(``gateway.config_sections``, ``gateway.config_mqtt``), then rules across sections here (two
serial entries on one port, watermarks in order). Unknown keys are errors with a "did you mean"
hint, because a typo silently ignored is a setting silently lost. Every number is finite and
within the limits of whatever consumes it (``gateway.config_checks``): a value that loads works.

Module map: ``config_model`` (the dataclasses), ``config_table`` (typed getters),
``config_checks`` (limits, hosts, URLs, paths), ``config_sections`` / ``config_mqtt`` (sections).
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.model import (
    BatchConfig,
    Config,
    FleetConfig,
    GatewayConfig,
    MqttConfig,
    OwnerConfig,
    ProvingConfig,
    SerialConfig,
    SpoolConfig,
    StatusConfig,
    StorageConfig,
    TopicRule,
)
from gateway.config.mqtt import mqtt_section
from gateway.config.sections import (
    batch_section,
    fleet_section,
    gateway_section,
    owner_section,
    proving_section,
    serial_section,
    spool_section,
    status_section,
    storage_section,
)
from gateway.config.table import Table, parse_toml
from gateway.errors import ConfigError

__all__ = [
    "BatchConfig",
    "Config",
    "FleetConfig",
    "GatewayConfig",
    "MqttConfig",
    "OwnerConfig",
    "ProvingConfig",
    "SerialConfig",
    "SpoolConfig",
    "StatusConfig",
    "StorageConfig",
    "TopicRule",
    "config_from_string",
    "load_config",
]


def _cross_checks(config: Config) -> None:
    """Rules that span sections (second pass)."""
    g = config.gateway
    if g.low_watermark >= g.high_watermark:
        raise ConfigError(
            "gateway.low_watermark",
            "must be below gateway.high_watermark",
            f"e.g. {round(g.high_watermark - 0.1, 2)}",
        )
    seen: dict[str, str] = {}
    for entry in config.serial:
        if entry.port in seen:
            raise ConfigError(
                f"serial.{entry.name}.port",
                f"{entry.port} is already used by serial entry {seen[entry.port]!r}",
                "one driver per port",
            )
        seen[entry.port] = entry.name
    names = [entry.name for entry in config.serial]
    if len(set(names)) != len(names):
        raise ConfigError(
            "serial.name", "two [[serial]] entries share a name", "names must be unique"
        )
    if config.spool.segment_size * 4 > g.disk_budget:
        raise ConfigError(
            "spool.segment_size",
            "is more than a quarter of gateway.disk_budget",
            "lower spool.segment_size or raise the budget",
        )
    if config.mqtt.quarantine_size > g.disk_budget:
        raise ConfigError(
            "mqtt.quarantine_size",
            "is larger than gateway.disk_budget, which it is part of",
            "lower it or raise the budget",
        )
    if not config.mqtt.enabled and not config.serial:
        raise ConfigError(
            "mqtt.enabled", "no source is configured", "enable [mqtt] or add a [[serial]] entry"
        )


_TOP = (
    "gateway",
    "spool",
    "mqtt",
    "serial",
    "batch",
    "owner",
    "storage",
    "proving",
    "status",
    "fleet",
    "node",
)


def config_from_string(text: str, path: Path | None = None) -> Config:
    """Parse and validate a config; relative paths are resolved against the file's directory."""
    data = parse_toml(text)
    base = path.parent.resolve() if path else Path.cwd()
    root = Table("", data, _TOP)
    gateway = gateway_section(root, base)
    config = Config(
        path=path,
        gateway=gateway,
        spool=spool_section(root),
        mqtt=mqtt_section(root, gateway.id, base),
        serial=serial_section(root),
        batch=batch_section(root),
        owner=owner_section(root),
        storage=storage_section(root),
        proving=proving_section(root),
        status=status_section(root),
        fleet=fleet_section(root),
    )
    _cross_checks(config)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "",
            f"{path} does not exist",
            "create one with: depin-gateway init --config " + str(path),
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(
            "", f"cannot read {path}: {exc}", "check the path and permissions"
        ) from None
    return config_from_string(text, path)
