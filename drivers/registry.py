"""Drivers by name: ``driver = "pms5003"`` in config and ``depin-gateway drivers decode``."""

from __future__ import annotations

import importlib

from drivers.base import Driver, Options
from gateway.errors import ConfigError

__all__ = ["DRIVER_MODULES", "create", "driver_class", "names"]

# name -> "module:Class". Imported lazily so a broken optional driver never stops the gateway.
DRIVER_MODULES: dict[str, str] = {
    "pms5003": "drivers.plantower:Pms5003",
    "pms7003": "drivers.plantower:Pms7003",
    "pms5003t": "drivers.plantower:Pms5003T",
    "pms5003s": "drivers.plantower:Pms5003S",
    "pms5003st": "drivers.plantower:Pms5003ST",
    "sds011": "drivers.sds011:Sds011",
    "mhz19": "drivers.mhz19:Mhz19",
    "nmea": "drivers.nmea:Nmea",
    "modbus": "drivers.modbus:Modbus",
    "lines": "drivers.lines:Lines",
    "bridge": "drivers.bridge:Bridge",
}


def names() -> list[str]:
    return sorted(DRIVER_MODULES)


def driver_class(name: str) -> type[Driver]:
    try:
        target = DRIVER_MODULES[name]
    except KeyError:
        raise ConfigError(
            "driver", f"unknown driver {name!r}", "one of: " + ", ".join(names())
        ) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Driver] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create(name: str, options: Options | None = None) -> Driver:
    """A fresh driver instance; raises ConfigError for an unknown name or a bad option."""
    return driver_class(name)(options)
