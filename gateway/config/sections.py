"""The config sections other than ``[mqtt]``: each a function from its TOML table to its value.

Every number has a range and every string a form; the limits are in ``gateway.config_checks``
where a protocol or library sets them, and here where only sense does (a spool commit more than
10 s away is a durability setting nobody means).
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.checks import (
    check_gateway_id,
    check_path,
    parse_host_port,
    parse_http_url,
    parse_mqtt_url,
)
from gateway.config.model import (
    BatchConfig,
    FleetConfig,
    GatewayConfig,
    OwnerConfig,
    ProvingConfig,
    SerialConfig,
    SpoolConfig,
    StatusConfig,
    StorageConfig,
)
from gateway.config.table import Table
from gateway.errors import ConfigError
from gateway.units import parse_size

__all__ = [
    "batch_section",
    "fleet_section",
    "gateway_section",
    "owner_section",
    "proving_section",
    "serial_section",
    "spool_section",
    "status_section",
    "storage_section",
]

_GIB = 1024**3
_STATE_DIR = "/var/lib/depin-gateway"
_DAY = 86400.0


def gateway_section(root: Table, base: Path) -> GatewayConfig:
    t = root.table("gateway", ("id", "state_dir", "disk_budget", "high_watermark", "low_watermark"))
    return GatewayConfig(
        id=check_gateway_id(t.key("id"), t.string("id", "gateway")),
        state_dir=check_path(t.key("state_dir"), t.string("state_dir", _STATE_DIR), base),
        disk_budget=t.size("disk_budget", "512MiB", minimum=64 * 1024),
        high_watermark=t.number("high_watermark", 0.95, 0.1, 1.0),
        low_watermark=t.number("low_watermark", 0.85, 0.05, 1.0),
    )


def spool_section(root: Table) -> SpoolConfig:
    t = root.table(
        "spool", ("segment_size", "commit_interval", "commit_max_readings", "dedup_window")
    )
    return SpoolConfig(
        segment_size=t.size("segment_size", "16MiB", minimum=4096, maximum=_GIB),
        # Nothing is acked before its commit: a long interval holds every ack back that long.
        commit_interval=t.duration("commit_interval", "10ms", minimum=0, maximum=10),
        commit_max_readings=t.integer("commit_max_readings", 2000, 1, 1_000_000),
        dedup_window=t.integer("dedup_window", 100_000, 0, 10_000_000),
    )


def _option_text(key: str, value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float) and len(str(value)) <= 4096 and "\0" not in str(value):
        return str(value)
    raise ConfigError(key, "expected a string, number or boolean (at most 4096 characters)",
                      'e.g. options = {mode = "passive"}')  # fmt: skip


def _serial_entry(index: int, item: object) -> SerialConfig:
    from drivers.registry import names

    t = Table(
        f"serial[{index}]",
        item,
        ("name", "port", "driver", "baudrate", "parity", "options", "reopen_max"),
    )
    driver = t.string("driver", "")
    if driver not in names():
        raise ConfigError(
            t.key("driver"), f"unknown driver {driver[:20]!r}", "one of: " + ", ".join(names())
        )
    port = t.string("port", "", max_bytes=4095)
    if not port:
        raise ConfigError(t.key("port"), "missing", 'e.g. port = "/dev/serial/by-id/usb-..."')
    options = t.data.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(t.key("options"), "expected a table", 'e.g. options = {mode = "passive"}')
    parity = t.string("parity", "N").upper()
    if parity not in ("N", "E", "O"):
        raise ConfigError(t.key("parity"), f"{parity[:10]!r} is not a parity", "use N, E or O")
    options_text = {str(k): _option_text(f"{t.key('options')}.{k}", v) for k, v in options.items()}
    _check_driver_options(t.key("options"), driver, options_text)
    return SerialConfig(
        name=t.string("name", f"serial{index}", max_bytes=255),
        port=port,
        driver=driver,
        baudrate=t.integer("baudrate", 0, 0, 4_000_000),
        parity=parity,
        options=options_text,
        reopen_max=t.duration("reopen_max", "30s", minimum=0.05, maximum=3600),
    )


def serial_section(root: Table) -> tuple[SerialConfig, ...]:
    raw = root.data.get("serial", [])
    if not isinstance(raw, list) or len(raw) > 64:
        raise ConfigError("serial", "expected up to 64 [[serial]] tables",
                          "write each port as [[serial]]")  # fmt: skip
    return tuple(_serial_entry(index, item) for index, item in enumerate(raw))


def _check_driver_options(key: str, driver: str, options: dict[str, str]) -> None:
    """Drivers validate their own options; name the full key in the error."""
    from drivers.registry import create

    try:
        create(driver, options)
    except ConfigError as exc:
        suffix = exc.key.removeprefix("options")
        raise ConfigError(key + suffix, exc.problem, exc.fix) from None


def batch_section(root: Table) -> BatchConfig:
    t = root.table(
        "batch", ("max_readings", "max_bytes", "max_age", "zstd_level", "codec", "time_resolution")
    )
    resolution = t.duration("time_resolution", "1us", minimum=1e-9, maximum=1.0)
    codec = t.string("codec", "readings-cbor-v2")
    if codec not in ("readings-cbor-v1", "readings-cbor-v2"):
        raise ConfigError(
            t.key("codec"),
            f"unknown codec {codec[:30]!r}",
            "readings-cbor-v2 (compact) or readings-cbor-v1 (fast)",
        )
    return BatchConfig(
        max_readings=t.integer("max_readings", 10_000, 1, 10_000_000),
        # A batch is built in memory; a gateway has far less than a GiB to spare for one.
        max_bytes=t.size("max_bytes", "4MiB", minimum=1024, maximum=_GIB),
        max_age=t.duration("max_age", "5m", minimum=0.1, maximum=30 * _DAY),
        zstd_level=t.integer("zstd_level", 19, 1, 22),
        codec=codec,
        time_resolution_ns=max(1, round(resolution * 1e9)),
    )


def owner_section(root: Table) -> OwnerConfig:
    from gateway.errors import KeyMaterialError
    from gateway.keys import parse_owner_public

    t = root.table("owner", ("public_keys",))
    keys = t.strings("public_keys", ())
    for index, key in enumerate(keys):
        try:
            parse_owner_public(key)
        except KeyMaterialError as exc:
            raise ConfigError(
                f"owner.public_keys[{index}]",
                exc.reason,
                "create one with: depin-gateway owner-key --out owner.key",
            ) from None
    return OwnerConfig(keys)


_STORAGE_KEYS = (
    "nodes",
    "data_fragments",
    "parity_fragments",
    "deal_duration",
    "max_price",
    "budget",
    "allow_same_node",
    "upload_rate",
    "request_timeout",
    "object_replicas",
    "repair_after",
)


def storage_section(root: Table) -> StorageConfig:
    t = root.table("storage", _STORAGE_KEYS)
    nodes = tuple(
        parse_http_url(f"{t.key('nodes')}[{index}]", url)
        for index, url in enumerate(t.strings("nodes", ()))
    )
    return StorageConfig(
        nodes=nodes,
        # GF(2^8) erasure coding: k + m <= 256 (gateway/seal/erasure.py), which 128 + 128 keeps.
        data_fragments=t.integer("data_fragments", 4, 1, 128),
        parity_fragments=t.integer("parity_fragments", 2, 0, 128),
        deal_duration=t.duration("deal_duration", "180d", minimum=60),
        max_price=t.integer("max_price", 10**12, 0, 2**63),
        budget=t.integer("budget", 10**18, 0, 2**63),
        allow_same_node=t.boolean("allow_same_node", False),
        upload_rate=_rate(t, "upload_rate"),
        request_timeout=t.duration("request_timeout", "10s", minimum=0.1, maximum=3600),
        object_replicas=t.integer("object_replicas", 3, 1, 16),
        repair_after=t.integer("repair_after", 2, 1, 100),
    )


def _rate(t: Table, name: str) -> int:
    """A byte rate: "1MiB/s" or "1MiB" (per second), 0 = unlimited."""
    raw = t.data.get(name, 0)
    try:
        value = parse_size(raw.strip().removesuffix("/s") if isinstance(raw, str) else raw)
    except ValueError as exc:
        raise ConfigError(t.key(name), str(exc), f'for example {name} = "1MiB/s"') from None
    if value > 2**40:
        raise ConfigError(t.key(name), f"{value} bytes/s is out of range", "use 0..1TiB/s")
    return value


def proving_section(root: Table) -> ProvingConfig:
    t = root.table("proving", ("interval", "challenges"))
    return ProvingConfig(
        t.duration("interval", "1h", minimum=1, maximum=30 * _DAY),
        t.integer("challenges", 5, 1, 64),
    )


def status_section(root: Table) -> StatusConfig:
    t = root.table("status", ("listen",))
    listen = t.string("listen", "127.0.0.1:8787")
    host, port = parse_host_port(t.key("listen"), listen, '"127.0.0.1:8787"')
    return StatusConfig(listen, host, port)


def fleet_section(root: Table) -> FleetConfig:
    t = root.table("fleet", ("broker", "heartbeat_interval"))
    broker = t.optional_string("broker")
    if broker is not None:
        parse_mqtt_url(t.key("broker"), broker)
    return FleetConfig(broker, t.duration("heartbeat_interval", "60s", minimum=1, maximum=_DAY))
