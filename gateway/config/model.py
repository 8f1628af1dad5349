"""The gateway config's values: frozen dataclasses, built only by ``gateway.config``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.chainmodel import ChainConfig, FocConfig

__all__ = [
    "PAYLOAD_FORMATS",
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
]

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
    client: str = "builtin"  # "builtin" (gateway/ingest/mqtt.py) or "paho"


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
    backends: tuple[str, ...] = ("market",)  # where fragments go: "market", "foc"


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
    chain: ChainConfig | None = None  # [chain]; None: no chain code is loaded
    foc: FocConfig | None = None  # [foc]; needs [chain] and storage.backends with "foc"

    @property
    def state_dir(self) -> Path:
        return self.gateway.state_dir
