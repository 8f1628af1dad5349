"""The storage node's ``[node]`` TOML section: parsed and validated once, then immutable.

``load_node_config(path)`` / ``node_config_from_string(text)`` return a ``NodeConfig`` or raise
``ConfigError`` naming the key (``node.capacity``) and the fix. Other sections of the file belong
to the gateway and are ignored here, so one file may configure both. ``NODE_TEMPLATE`` is the
commented file ``node init`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from gateway.chain.address import parse_address
from gateway.config.checks import check_path, parse_host_port, parse_http_url, parse_mqtt_url
from gateway.config.table import Table, parse_toml, toml_string
from gateway.errors import ConfigError
from gateway.market.epoch import EPOCH_SECONDS
from gateway.node.config_template import NODE_TEMPLATE

__all__ = [
    "NODE_TEMPLATE",
    "ChainSettings",
    "NodeConfig",
    "load_node_config",
    "node_config_from_string",
    "render_node_config",
]
# re-exported: NODE_TEMPLATE lives in config_template

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
    "unclaimed_keep",
    "max_unclaimed",
    "max_unclaimed_per_address",
    "chain_rpc",
    "chain_id",
    "pdp_verifier",
    "wallet",
    "record_keepers",
)
_MAX_PIECE = 1 << 40  # 1 TiB padded: far beyond anything a Pi-class node stores


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """``chain_rpc`` and friends: the chain the data-set routes send transactions to."""

    rpc: str
    chain_id: int | None  # checked against eth_chainId at start when set
    pdp_verifier: str  # EIP-55
    wallet: Path  # the provider's secp256k1 key file (gateway.chain.wallet), pays the gas
    record_keepers: tuple[str, ...]  # allowed recordKeeper addresses (EIP-55), at least one


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
    unclaimed_keep: float  # an upload no deal or data set claims is deleted this long after
    max_unclaimed: int  # bytes of unclaimed uploads (parked or arriving), node-wide
    max_unclaimed_per_address: int
    chain: ChainSettings | None = None  # None: not a FOC provider (data-set routes answer 501)

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
        "unclaimed_keep": _bounded_duration(t, "unclaimed_keep", "2h", 1, 30 * 86_400),
        "max_unclaimed": _share(t, "max_unclaimed", capacity // 4, capacity),
        "max_unclaimed_per_address": _share(t, "max_unclaimed_per_address", 1 << 30, capacity),
    }


def _address(t: Table, name: str, value: str) -> str:
    return parse_address(value, t.key(name))  # ConfigError naming the key


def _chain(t: Table, base: Path) -> ChainSettings | None:
    """The optional chain keys: chain_rpc, pdp_verifier, wallet and record_keepers, or none."""
    rpc, verifier, wallet = (t.optional_string(k) for k in ("chain_rpc", "pdp_verifier", "wallet"))
    if rpc is None and verifier is None and wallet is None:
        return None
    for name, value in (("chain_rpc", rpc), ("pdp_verifier", verifier), ("wallet", wallet)):
        if not value:
            raise ConfigError(
                t.key(name), "is required with the other chain keys",
                "set chain_rpc, pdp_verifier and wallet together, or none of them",
            )  # fmt: skip
    assert rpc is not None and verifier is not None and wallet is not None
    rpc = parse_http_url(t.key("chain_rpc"), rpc)
    chain_id = t.integer("chain_id", 0, 0, 2**63) or None
    keepers = tuple(_address(t, "record_keepers", k) for k in t.strings("record_keepers", ()))
    if not keepers or "0x" + "00" * 20 in keepers:
        # each data set costs the provider PDPVerifier's sybil fee: as in Curio, a public
        # caller may only name record keepers that check the payer's signature (FWSS)
        raise ConfigError(
            t.key("record_keepers"), "must name the record keepers clients may use",
            'e.g. record_keepers = ["<FWSS proxy address>"] (never the zero address)',
        )  # fmt: skip
    wallet_path = check_path(t.key("wallet"), wallet, base).resolve()
    return ChainSettings(rpc, chain_id, _address(t, "pdp_verifier", verifier), wallet_path, keepers)


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
        chain=_chain(t, base),
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


def render_node_config(data_dir: Path, listen: str | None = None) -> str:
    return NODE_TEMPLATE.format(
        listen=toml_string(listen or "127.0.0.1:8900"), data_dir=toml_string(str(data_dir))
    )
