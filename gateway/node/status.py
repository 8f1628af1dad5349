"""The node's status (JSON for ``GET /status``) and Prometheus metrics; never secrets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway import __version__

if TYPE_CHECKING:
    from gateway.node.service import NodeService

__all__ = ["node_status", "prometheus_text"]


def node_status(service: NodeService) -> dict[str, Any]:
    return {
        "provider": service.provider,
        "provider_id": service.provider_id,
        "version": __version__,
        "uptime_s": round(service.uptime(), 3),
        "url": service.url,
        "epoch": service.epoch(),
        "ask": service.ask(),
        "capacity": service.config.capacity,
        "used": service.used_bytes,
        "reserved": service.reserved_bytes,
        "free": service.free_bytes,
        "pieces": len(service.pieces),
        "uploads_in_progress": len(service.uploading),
        "unclaimed": {
            "pieces": len(unclaimed := service.unclaimed_parked()),
            "bytes": sum(p.size for p in unclaimed),
            "sessions": len(service.sessions),
        },
        "foc_provider": service.chain is not None,
        "data_set_txs": dict(sorted(Counter(r.state.value for r in service.txs.values()).items())),
        "deals": service.deal_counts(),
        "earnings": service.earnings(),
        "rejected": dict(sorted(service.refusals.items())),
        "connections": dict(service.connection_counts),
    }


class _Collector(Collector):
    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.status
        for name, metric, help_text in (
            ("capacity", "capacity_bytes", "Bytes offered (padded)"),
            ("used", "used_bytes", "Bytes stored (padded)"),
            ("reserved", "reserved_bytes", "Bytes reserved by deals awaiting upload"),
            ("free", "free_bytes", "Bytes free for new deals"),
            ("pieces", "pieces", "Pieces held"),
        ):
            yield GaugeMetricFamily(f"depin_node_{metric}", help_text, value=s[name])
        yield GaugeMetricFamily(
            "depin_node_unclaimed_bytes",
            "Bytes of parked uploads no deal or data set claims (padded)",
            value=s["unclaimed"]["bytes"],
        )
        deals = GaugeMetricFamily("depin_node_deals", "Deals by state", labels=["state"])
        for state, count in s["deals"].items():
            deals.add_metric([state], count)
        yield deals
        yield CounterMetricFamily(
            "depin_node_earned_attofil",
            "attoFIL received in vouchers",
            value=int(s["earnings"]["total"]),
        )
        yield CounterMetricFamily(
            "depin_node_vouchers", "Vouchers accepted", value=s["earnings"]["vouchers"]
        )
        rejected = CounterMetricFamily(
            "depin_node_requests_rejected", "Requests refused, by reason", labels=["reason"]
        )
        for reason, count in s["rejected"].items():
            rejected.add_metric([reason], count)
        yield rejected
        connections = CounterMetricFamily(
            "depin_node_connections_closed",
            "Connections the node closed or refused, by reason",
            labels=["reason"],
        )
        for reason, count in s["connections"].items():
            if reason != "open":
                connections.add_metric([reason], count)
        yield connections
        yield GaugeMetricFamily("depin_node_uptime_seconds", "Uptime", value=s["uptime_s"])


def prometheus_text(service: NodeService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(node_status(service)))
    return generate_latest(registry)
