"""The storage node's ``[node]`` TOML section: parsed and validated once, then immutable.

``load_node_config(path)`` / ``node_config_from_string(text)`` return a ``NodeConfig`` or raise
``ConfigError`` naming the key (``node.capacity``) and the fix. Other sections of the file belong
to the gateway and are ignored here, so one file may configure both. ``NODE_TEMPLATE`` is the
commented file ``node init`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from gateway.config.checks import check_path, parse_host_port, parse_http_url, parse_mqtt_url
from gateway.config.table import Table, parse_toml, toml_string
from gateway.errors import ConfigError
from gateway.market.epoch import EPOCH_SECONDS

__all__ = [
    "NODE_TEMPLATE",
    "NodeConfig",
    "load_node_config",
    "node_config_from_string",
    "render_node_config",
]

_KEYS = (
    "listen",
    "public_url",
    "data_dir",
    "identity",
    "provider_id",
    "capacity",
    "price",
    "min_piece_size",
    "max_piece_size",
    "min_duration",
    "max_duration",
    "max_start_delay",
    "max_pending_deals",
    "fleet_broker",
    "announce_interval",
    "ask_ttl",
    "gc_interval",
    "max_skew",
    "max_prove_leaves",
    "rate_requests",
    "rate_burst",
    "upload_rate",
    "upload_burst",
    "reservation_ttl",
    "max_reserved_per_client",
    "max_reserved_per_address",
    "max_unpaid_reserved",
    "payment_grace",
    "header_timeout",
    "body_timeout",
    "max_connections",
)
_MAX_PIECE = 1 << 40  # 1 TiB padded: far beyond anything a Pi-class node stores


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A validated ``[node]`` section; sizes in bytes, durations in seconds."""

    listen: str
    host: str
    port: int
    public_url: str | None
    data_dir: Path
    identity: Path
    provider_id: str | None
    capacity: int
    price: int  # attoFIL per GiB (padded) per epoch
    min_piece_size: int  # padded bytes, power of two
    max_piece_size: int
    min_duration: float
    max_duration: float
    max_start_delay: float
    max_pending_deals: int  # per client: accepted deals whose piece is not uploaded yet
    fleet_broker: str | None
    broker_host: str
    broker_port: int
    announce_interval: float
    ask_ttl: float
    gc_interval: float
    max_skew: int
    max_prove_leaves: int
    rate_requests: float  # per client (key, or address for open reads) per second
    rate_burst: int
    upload_rate: int  # bytes per second per client
    upload_burst: int
    reservation_ttl: float  # an unpaid reservation lapses this long after acceptance
    max_reserved_per_client: int  # bytes reserved by accepted, not yet uploaded deals
    max_reserved_per_address: int
    max_unpaid_reserved: int  # node-wide, by deals whose vouchers do not cover the reservation
    payment_grace: float  # how far an active deal's vouchers may lag its price
    header_timeout: float  # connect (or previous response) to a complete request head
    body_timeout: float  # longest wait for the next bytes of a request body
    max_connections: int  # lowered at start to fit the process's file-descriptor limit

    def with_changes(self, **changes: object) -> NodeConfig:
        """A copy with some fields replaced (tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def min_duration_epochs(self) -> int:
        return int(self.min_duration // EPOCH_SECONDS)

    @property
    def max_duration_epochs(self) -> int:
        return int(self.max_duration // EPOCH_SECONDS)


def _listen(t: Table) -> tuple[str, str, int]:
    listen = t.string("listen", "127.0.0.1:8900")
    host, port = parse_host_port(t.key("listen"), listen, '"127.0.0.1:8900"', allow_zero=True)
    return listen, host, port


def _padded(t: Table, name: str, default: str) -> int:
    value = t.size(name, default, minimum=128)
    if value & (value - 1) or value > _MAX_PIECE:
        raise ConfigError(
            t.key(name),
            f"{value} is not a padded piece size",
            "use a power of two between 128 B and 1TiB, e.g. 64MiB",
        )
    return value


def _broker(t: Table) -> tuple[str | None, str, int]:
    url = t.optional_string("fleet_broker")
    if not url:
        return None, "", 0
    host, port = parse_mqtt_url(t.key("fleet_broker"), url)
    return url, host, port


def _bounded_duration(t: Table, name: str, default: str, low: float, high: float) -> float:
    value = t.duration(name, default, minimum=low)
    if value > high:
        raise ConfigError(t.key(name), f"{value}s is too long", f"use {low}s..{high:.0f}s")
    return value


def _share(t: Table, name: str, default: int, capacity: int) -> int:
    """A byte cap within capacity; the default follows capacity, an explicit value must fit."""
    if name not in t.data:
        return min(default, capacity)
    value = t.size(name, default, minimum=128)
    if value > capacity:
        raise ConfigError(
            t.key(name), f"{value} bytes is more than capacity ({capacity})", "lower it"
        )
    return value


def _abuse(t: Table, capacity: int) -> dict[str, object]:
    """The keys that bound what clients may hold: reservations, payments, connections."""
    return {
        "reservation_ttl": _bounded_duration(t, "reservation_ttl", "10m", 1, 86_400),
        "max_reserved_per_client": _share(t, "max_reserved_per_client", 1 << 30, capacity),
        "max_reserved_per_address": _share(t, "max_reserved_per_address", 2 << 30, capacity),
        "max_unpaid_reserved": _share(t, "max_unpaid_reserved", capacity // 2, capacity),
        "payment_grace": _bounded_duration(t, "payment_grace", "3d", EPOCH_SECONDS, 540 * 86_400),
        "header_timeout": _bounded_duration(t, "header_timeout", "10s", 0.05, 300),
        "body_timeout": _bounded_duration(t, "body_timeout", "30s", 0.05, 3600),
        "max_connections": t.integer("max_connections", 512, 4, 65_536),
    }


def _identity(t: Table, base: Path) -> tuple[Path, Path, str | None]:
    """``data_dir``, the key file in it, and the optional ``provider_id``."""
    data_dir_text = t.string("data_dir", "")
    if not data_dir_text:
        raise ConfigError(t.key("data_dir"), "is required", 'e.g. data_dir = "/var/lib/depin-node"')
    data_dir = check_path(t.key("data_dir"), data_dir_text, base).resolve()
    identity = check_path(t.key("identity"), t.string("identity", "node.key"), data_dir).resolve()
    provider_id = t.optional_string("provider_id")
    if provider_id is not None and (not provider_id or any(c in provider_id for c in "/+#\0 ")):
        raise ConfigError(
            t.key("provider_id"),
            f"{provider_id!r} cannot be an MQTT topic level",
            "use letters, digits, '-' and '_'",
        )
    return data_dir, identity, provider_id


def _node(data: dict[str, object], base: Path) -> NodeConfig:
    if "node" not in data:
        raise ConfigError(
            "node", "the file has no [node] section", "create one with: depin-gateway node init"
        )
    t = Table("node", data["node"], _KEYS)
    listen, host, port = _listen(t)
    public_url = t.optional_string("public_url")
    if public_url is not None:
        public_url = parse_http_url(t.key("public_url"), public_url)
    data_dir, identity, provider_id = _identity(t, base)
    min_piece = _padded(t, "min_piece_size", "128B")
    max_piece = _padded(t, "max_piece_size", "64MiB")
    if min_piece > max_piece:
        raise ConfigError(
            t.key("min_piece_size"),
            "is larger than max_piece_size",
            "lower it or raise max_piece_size",
        )
    capacity = t.size("capacity", "10GiB", minimum=128)
    min_duration = t.duration("min_duration", "1h", minimum=EPOCH_SECONDS)
    max_duration = t.duration("max_duration", "540d", minimum=EPOCH_SECONDS)
    if min_duration > max_duration:
        raise ConfigError(
            t.key("min_duration"), "is longer than max_duration", "lower it or raise max_duration"
        )
    fleet_broker, broker_host, broker_port = _broker(t)
    return NodeConfig(
        listen=listen,
        host=host,
        port=port,
        public_url=public_url.rstrip("/") if public_url else None,
        data_dir=data_dir,
        identity=identity,
        provider_id=provider_id,
        capacity=capacity,
        price=t.integer("price", 1_000_000, 0, 10**30),
        min_piece_size=min_piece,
        max_piece_size=max_piece,
        min_duration=min_duration,
        max_duration=max_duration,
        max_start_delay=t.duration("max_start_delay", "7d", minimum=EPOCH_SECONDS),
        max_pending_deals=t.integer("max_pending_deals", 64, 1, 1_000_000),
        fleet_broker=fleet_broker,
        broker_host=broker_host,
        broker_port=broker_port,
        announce_interval=t.duration("announce_interval", "5m", minimum=0.1),
        ask_ttl=t.duration("ask_ttl", "1h", minimum=EPOCH_SECONDS),
        gc_interval=t.duration("gc_interval", "5m", minimum=0.05),
        max_skew=int(t.duration("max_skew", "300s", minimum=1)),
        max_prove_leaves=t.integer("max_prove_leaves", 64, 1, 4096),
        rate_requests=t.number("rate_requests", 50, 0.01, 1e9),
        rate_burst=t.integer("rate_burst", 200, 1, 10**9),
        upload_rate=t.size("upload_rate", "64MiB", minimum=1024),
        upload_burst=t.size("upload_burst", "128MiB", minimum=1024),
        **_abuse(t, capacity),  # type: ignore[arg-type]
    )


def node_config_from_string(text: str, path: Path | None = None) -> NodeConfig:
    """Parse and validate ``[node]``; a relative ``data_dir`` is relative to the file."""
    data = parse_toml(text)
    base = path.parent.resolve() if path else Path.cwd()
    return _node(data, base)


def load_node_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "",
            f"{path} does not exist",
            f"create one with: depin-gateway node init --config {path}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "", f"cannot read {path}: {exc}", "check the path and permissions"
        ) from None
    return node_config_from_string(text, path)


NODE_TEMPLATE = """\
# depin-gateway storage node. Docs: gateway/node/API.md and README "Running a storage node".
# Sizes like "10GiB", durations like "5m" / "540d". Amounts are integer attoFIL.

[node]
# Where the HTTP API listens. Keep it on loopback behind a reverse proxy, or open it on purpose.
listen = {listen}
# The URL clients reach this node at (goes into the signed ask). Default: http://<listen>.
# public_url = "https://node.example.org"
# Pieces, deal records and the node identity key live here.
data_dir = {data_dir}
# The provider identity (Ed25519, mode 0600, created by `node init`, never overwritten).
identity = "node.key"
# Disk space offered to clients (padded piece bytes).
capacity = "10GiB"
# Price in attoFIL per GiB (padded) per epoch (30 s).
price = 1000000
# Padded piece sizes accepted (powers of two).
min_piece_size = "128B"
max_piece_size = "64MiB"
# Deal durations accepted, and how far ahead a deal may start (its upload deadline).
min_duration = "1h"
max_duration = "540d"
max_start_delay = "7d"
# Accepted deals per client still waiting for their upload (they reserve space).
max_pending_deals = 64
# Announce the signed ask, retained, on the fleet broker (optional).
# fleet_broker = "mqtt://127.0.0.1:1883"
# provider_id = "my-node"          # default: first 16 hex digits of the provider key
announce_interval = "5m"
ask_ttl = "1h"
# How often expired deals are garbage-collected.
gc_interval = "5m"
# Allowed clock difference for signed requests.
max_skew = "300s"
# Leaves per proof request.
max_prove_leaves = 64
# Per-client limits: requests per second (and burst), upload bytes per second (and burst).
rate_requests = 50
rate_burst = 200
upload_rate = "64MiB"
upload_burst = "128MiB"
# Reservations (API.md "Capacity under abuse"): an accepted deal's space is held this long
# waiting for its upload unless vouchers pay for it; caps per key, per address, and unpaid in all.
reservation_ttl = "10m"
# max_reserved_per_client = "1GiB"
# max_reserved_per_address = "2GiB"
# max_unpaid_reserved = "5GiB"     # default: half of capacity
# An active deal whose vouchers lag its price by more than this is ended.
payment_grace = "3d"
# Connections: a request head must arrive within header_timeout of connecting (or of the previous
# response), body bytes within body_timeout; at most max_connections (fitted to LimitNOFILE).
header_timeout = "10s"
body_timeout = "30s"
max_connections = 512
"""


def render_node_config(data_dir: Path, listen: str | None = None) -> str:
    return NODE_TEMPLATE.format(
        listen=toml_string(listen or "127.0.0.1:8900"), data_dir=toml_string(str(data_dir))
    )
