"""The gateway's TOML configuration: parsed and validated once, then immutable.

``load_config(path)`` / ``config_from_string(text)`` return a ``Config`` or raise ``ConfigError``
naming the key (``mqtt.port``) and the fix. Validation has two passes: each section on its own,
then rules across sections (two serial entries on one port, watermarks in order). Unknown keys are
errors with a "did you mean" hint, because a typo silently ignored is a setting silently lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from gateway.config_table import Table, parse_toml
from gateway.errors import ConfigError
from gateway.units import parse_size

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

T = TypeVar("T")
PAYLOAD_FORMATS = ("any", "json", "utf8")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    id: str
    state_dir: Path
    disk_budget: int
    high_watermark: float
    low_watermark: float


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    segment_size: int
    commit_interval: float
    commit_max_readings: int
    dedup_window: int


@dataclass(frozen=True, slots=True)
class TopicRule:
    """A subscription: an MQTT topic filter and the payload format readings on it must have."""

    filter: str
    format: str = "any"


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool
    host: str
    port: int
    client_id: str
    topics: tuple[TopicRule, ...]
    qos: int
    keepalive: int
    session_expiry: int
    receive_maximum: int
    max_payload: int
    quarantine_size: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    reconnect_min: float
    reconnect_max: float


@dataclass(frozen=True, slots=True)
class SerialConfig:
    name: str
    port: str
    driver: str
    baudrate: int
    parity: str
    options: Mapping[str, str]
    reopen_max: float


@dataclass(frozen=True, slots=True)
class BatchConfig:
    max_readings: int
    max_bytes: int
    max_age: float
    zstd_level: int
    codec: str = "readings-cbor-v2"
    time_resolution_ns: int = 1000


@dataclass(frozen=True, slots=True)
class OwnerConfig:
    public_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StorageConfig:
    nodes: tuple[str, ...]
    data_fragments: int
    parity_fragments: int
    deal_duration: float
    max_price: int
    budget: int
    allow_same_node: bool
    upload_rate: int = 0  # bytes per second for fragment uploads; 0 = unlimited
    request_timeout: float = 10.0  # every request to a storage node
    object_replicas: int = 3  # copies of each dictionary object and ledger snapshot
    repair_after: int = 2  # consecutive failed proofs before a fragment is re-placed


@dataclass(frozen=True, slots=True)
class ProvingConfig:
    interval: float
    challenges: int


@dataclass(frozen=True, slots=True)
class StatusConfig:
    listen: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class FleetConfig:
    broker: str | None
    heartbeat_interval: float


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    gateway: GatewayConfig
    spool: SpoolConfig
    mqtt: MqttConfig
    serial: tuple[SerialConfig, ...]
    batch: BatchConfig
    owner: OwnerConfig
    storage: StorageConfig
    proving: ProvingConfig
    status: StatusConfig
    fleet: FleetConfig = field(default_factory=lambda: FleetConfig(None, 60.0))

    @property
    def state_dir(self) -> Path:
        return self.gateway.state_dir


def _gateway(root: Table, base: Path) -> GatewayConfig:
    t = root.table("gateway", ("id", "state_dir", "disk_budget", "high_watermark", "low_watermark"))
    gateway_id = t.string("id", "gateway")
    if not gateway_id or any(c in gateway_id for c in "/+#\0 "):
        raise ConfigError(
            t.key("id"),
            f"{gateway_id!r} cannot be used in MQTT topics",
            "use letters, digits, '-' and '_'",
        )
    state_dir = Path(t.string("state_dir", "/var/lib/depin-gateway")).expanduser()
    return GatewayConfig(
        id=gateway_id,
        state_dir=state_dir if state_dir.is_absolute() else base / state_dir,
        disk_budget=t.size("disk_budget", "512MiB", minimum=64 * 1024),
        high_watermark=t.number("high_watermark", 0.95, 0.1, 1.0),
        low_watermark=t.number("low_watermark", 0.85, 0.05, 1.0),
    )


def _spool(root: Table) -> SpoolConfig:
    t = root.table(
        "spool", ("segment_size", "commit_interval", "commit_max_readings", "dedup_window")
    )
    return SpoolConfig(
        segment_size=t.size("segment_size", "16MiB", minimum=4096),
        commit_interval=t.duration("commit_interval", "10ms"),
        commit_max_readings=t.integer("commit_max_readings", 2000, 1, 1_000_000),
        dedup_window=t.integer("dedup_window", 100_000, 0, 10_000_000),
    )


def _topic_rules(t: Table) -> tuple[TopicRule, ...]:
    raw = t.data.get("topics", ["sensors/#"])
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            t.key("topics"),
            "expected a non-empty list",
            'e.g. topics = ["sensors/#"] or [{filter = "sensors/#", format = "json"}]',
        )
    rules = []
    for index, item in enumerate(raw):
        where = f"{t.key('topics')}[{index}]"
        rule = Table(
            where, {"filter": item} if isinstance(item, str) else item, ("filter", "format")
        )
        topic_filter = rule.string("filter", "")
        _check_filter(rule.key("filter"), topic_filter)
        fmt = rule.string("format", "any")
        if fmt not in PAYLOAD_FORMATS:
            raise ConfigError(
                rule.key("format"),
                f"unknown format {fmt!r}",
                "use one of: " + ", ".join(PAYLOAD_FORMATS),
            )
        rules.append(TopicRule(topic_filter, fmt))
    return tuple(rules)


def _check_filter(key: str, topic_filter: str) -> None:
    """MQTT 3.1.1 section 4.7: '#' only last and alone in its level, '+' alone in its level."""
    levels = topic_filter.split("/")
    ok = "\0" not in topic_filter
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            ok = False
        if "+" in level and level != "+":
            ok = False
    if not ok or not topic_filter:
        raise ConfigError(
            key,
            f"{topic_filter!r} is not a valid MQTT topic filter",
            "'#' must be last and alone in its level, '+' alone in its level",
        )


def _mqtt(root: Table, gateway_id: str, base: Path) -> MqttConfig:
    t = root.table(
        "mqtt",
        (
            "enabled",
            "host",
            "port",
            "client_id",
            "topics",
            "qos",
            "keepalive",
            "session_expiry",
            "receive_maximum",
            "max_payload",
            "quarantine_size",
            "username",
            "password",
            "password_file",
            "tls",
            "ca_file",
            "cert_file",
            "key_file",
            "reconnect_min",
            "reconnect_max",
        ),
    )
    password = t.optional_string("password")
    password_file = t.optional_string("password_file")
    if password_file is not None:
        if password is not None:
            raise ConfigError(
                t.key("password_file"), "both password and password_file are set", "keep only one"
            )
        try:
            password = (base / password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                t.key("password_file"),
                f"cannot read {password_file}: {exc.strerror}",
                "check the path and its permissions",
            ) from None
    if password is not None and t.optional_string("username") is None:
        raise ConfigError(
            t.key("password" if password_file is None else "password_file"),
            "is set without mqtt.username, so it would never be sent",
            'add username = "..."',
        )

    def path(name: str) -> Path | None:
        value = t.optional_string(name)
        return None if value is None else base / Path(value).expanduser()

    reconnect_min = t.duration("reconnect_min", "1s", minimum=0.01)
    tls = t.boolean("tls", False)
    for name in ("ca_file", "cert_file", "key_file"):
        if not tls and name in t.data:
            raise ConfigError(t.key(name), "is set but tls is false (plaintext connection)",
                              "set tls = true, or remove the key")  # fmt: skip
    return MqttConfig(
        enabled=t.boolean("enabled", True),
        host=t.string("host", "127.0.0.1"),
        port=t.integer("port", 1883, 1, 65535),
        client_id=t.string("client_id", f"depin-gateway-{gateway_id}"),
        topics=_topic_rules(t),
        qos=t.integer("qos", 1, 1, 2),
        keepalive=int(t.duration("keepalive", "30s", minimum=5)),
        session_expiry=int(t.duration("session_expiry", "7d", minimum=60)),
        receive_maximum=t.integer("receive_maximum", 1000, 1, 65535),
        max_payload=t.size("max_payload", "256KiB", minimum=16),
        quarantine_size=t.size("quarantine_size", "16MiB", minimum=0),
        username=t.optional_string("username"),
        password=password,
        tls=tls,
        ca_file=path("ca_file"),
        cert_file=path("cert_file"),
        key_file=path("key_file"),
        reconnect_min=reconnect_min,
        reconnect_max=max(reconnect_min, t.duration("reconnect_max", "30s")),
    )


def _serial(root: Table) -> tuple[SerialConfig, ...]:
    from drivers.registry import names

    raw = root.data.get("serial", [])
    if not isinstance(raw, list):
        raise ConfigError("serial", "expected [[serial]] tables", "write each port as [[serial]]")
    entries = []
    for index, item in enumerate(raw):
        t = Table(
            f"serial[{index}]",
            item,
            ("name", "port", "driver", "baudrate", "parity", "options", "reopen_max"),
        )
        driver = t.string("driver", "")
        if driver not in names():
            raise ConfigError(
                t.key("driver"), f"unknown driver {driver!r}", "one of: " + ", ".join(names())
            )
        port = t.string("port", "")
        if not port:
            raise ConfigError(t.key("port"), "missing", 'e.g. port = "/dev/serial/by-id/usb-..."')
        options = t.data.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(
                t.key("options"), "expected a table", 'e.g. options = {mode = "passive"}'
            )
        parity = t.string("parity", "N").upper()
        if parity not in ("N", "E", "O"):
            raise ConfigError(t.key("parity"), f"{parity!r} is not a parity", "use N, E or O")
        options_text = {
            str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()
        }
        _check_driver_options(t.key("options"), driver, options_text)
        entries.append(
            SerialConfig(
                name=t.string("name", f"serial{index}"),
                port=port,
                driver=driver,
                baudrate=t.integer("baudrate", 0, 0, 4_000_000),
                parity=parity,
                options=options_text,
                reopen_max=t.duration("reopen_max", "30s", minimum=0.05),
            )
        )
    return tuple(entries)


def _check_driver_options(key: str, driver: str, options: dict[str, str]) -> None:
    """Drivers validate their own options; name the full key in the error."""
    from drivers.registry import create

    try:
        create(driver, options)
    except ConfigError as exc:
        suffix = exc.key.removeprefix("options")
        raise ConfigError(key + suffix, exc.problem, exc.fix) from None


def _batch(root: Table) -> BatchConfig:
    t = root.table(
        "batch", ("max_readings", "max_bytes", "max_age", "zstd_level", "codec", "time_resolution")
    )
    resolution = t.duration("time_resolution", "1us")
    if not 1e-9 <= resolution <= 1.0:
        raise ConfigError(t.key("time_resolution"), "must be between 1ns and 1s", 'e.g. "1us"')
    codec = t.string("codec", "readings-cbor-v2")
    if codec not in ("readings-cbor-v1", "readings-cbor-v2"):
        raise ConfigError(
            t.key("codec"),
            f"unknown codec {codec!r}",
            "readings-cbor-v2 (compact) or readings-cbor-v1 (fast)",
        )
    return BatchConfig(
        max_readings=t.integer("max_readings", 10_000, 1, 10_000_000),
        max_bytes=t.size("max_bytes", "4MiB", minimum=1024),
        max_age=t.duration("max_age", "5m", minimum=0.1),
        zstd_level=t.integer("zstd_level", 19, 1, 22),
        codec=codec,
        time_resolution_ns=max(1, round(resolution * 1e9)),
    )


def _owner(root: Table) -> OwnerConfig:
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


def _storage(root: Table) -> StorageConfig:
    t = root.table(
        "storage",
        (
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
        ),
    )
    return StorageConfig(
        nodes=t.strings("nodes", ()),
        data_fragments=t.integer("data_fragments", 4, 1, 128),
        parity_fragments=t.integer("parity_fragments", 2, 0, 128),
        deal_duration=t.duration("deal_duration", "180d", minimum=60),
        max_price=t.integer("max_price", 10**12, 0, 2**63),
        budget=t.integer("budget", 10**18, 0, 2**63),
        allow_same_node=t.boolean("allow_same_node", False),
        upload_rate=_rate(t, "upload_rate"),
        request_timeout=t.duration("request_timeout", "10s", minimum=0.1),
        object_replicas=t.integer("object_replicas", 3, 1, 16),
        repair_after=t.integer("repair_after", 2, 1, 100),
    )


def _rate(t: Table, name: str) -> int:
    """A byte rate: "1MiB/s" or "1MiB" (per second), 0 = unlimited."""
    raw = t.data.get(name, 0)
    try:
        return parse_size(raw.strip().removesuffix("/s") if isinstance(raw, str) else raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(t.key(name), str(exc), f'for example {name} = "1MiB/s"') from None


def _proving(root: Table) -> ProvingConfig:
    t = root.table("proving", ("interval", "challenges"))
    return ProvingConfig(t.duration("interval", "1h", minimum=1), t.integer("challenges", 5, 1, 64))


def _status(root: Table) -> StatusConfig:
    t = root.table("status", ("listen",))
    listen = t.string("listen", "127.0.0.1:8787")
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(t.key("listen"), f"{listen!r} is not host:port", 'e.g. "127.0.0.1:8787"')
    return StatusConfig(listen, host.strip("[]") or "127.0.0.1", int(port))


def _fleet(root: Table) -> FleetConfig:
    t = root.table("fleet", ("broker", "heartbeat_interval"))
    return FleetConfig(t.optional_string("broker"), t.duration("heartbeat_interval", "60s", 1))


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
    gateway = _gateway(root, base)
    config = Config(
        path=path,
        gateway=gateway,
        spool=_spool(root),
        mqtt=_mqtt(root, gateway.id, base),
        serial=_serial(root),
        batch=_batch(root),
        owner=_owner(root),
        storage=_storage(root),
        proving=_proving(root),
        status=_status(root),
        fleet=_fleet(root),
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
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "", f"cannot read {path}: {exc}", "check the path and permissions"
        ) from None
    return config_from_string(text, path)
