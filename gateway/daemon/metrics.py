"""Prometheus text for a ``StatusSnapshot``: imported by the first /metrics request only, so the
prometheus_client import (~12 MB of RSS) is paid by gateways that are scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.status import StatusSnapshot

__all__ = ["prometheus_text"]


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: StatusSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.snapshot
        d = s.to_json()
        yield CounterMetricFamily(
            "depin_gateway_readings", "Readings made durable", value=s.readings_total
        )
        yield GaugeMetricFamily(
            "depin_gateway_spool_pending", "Durable readings not yet sealed", value=s.spool_pending
        )
        yield CounterMetricFamily(
            "depin_gateway_batches_sealed", "Sealed batches", value=s.batches_sealed
        )
        yield GaugeMetricFamily(
            "depin_gateway_batches_durable", "Batches proven on >= k nodes", value=s.batches_durable
        )
        yield CounterMetricFamily(
            "depin_gateway_quarantined", "Messages quarantined", value=s.quarantined
        )
        yield GaugeMetricFamily(
            "depin_gateway_backpressure",
            "1 while the disk budget blocks acks",
            value=int(s.backpressure),
        )
        yield GaugeMetricFamily(
            "depin_gateway_uptime_seconds", "Seconds since start", value=s.uptime_s
        )
        yield GaugeMetricFamily(
            "depin_gateway_healthy", "1 while every component runs", value=int(s.healthy)
        )
        yield GaugeMetricFamily(
            "depin_gateway_degraded",
            "1 while ingest or sealing cannot progress",
            value=int(bool(s.degraded)),
        )
        disk = d.get("disk", {})
        if disk:
            yield GaugeMetricFamily(
                "depin_gateway_disk_used_bytes",
                "Bytes counted against the budget",
                value=disk["used"],
            )
            yield GaugeMetricFamily(
                "depin_gateway_disk_budget_bytes", "Disk budget", value=disk["budget"]
            )
            yield CounterMetricFamily(
                "depin_gateway_disk_written_bytes",
                "Bytes written (SD-card wear)",
                value=disk["bytes_written"],
            )
        sources = CounterMetricFamily(
            "depin_gateway_source_received", "Messages received per source", labels=["source"]
        )
        connected = GaugeMetricFamily(
            "depin_gateway_source_connected", "1 while a source is connected", labels=["source"]
        )
        for name, source in d.get("sources", {}).items():
            sources.add_metric([name], source.get("received", 0))
            connected.add_metric([name], int(bool(source.get("connected"))))
        yield sources
        yield connected
        yield from _storage_metrics(d.get("storage", {}))


def _storage_metrics(storage: dict[str, Any]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    if not storage.get("enabled"):
        return
    proofs = CounterMetricFamily(
        "depin_gateway_storage_node_proofs",
        "Proof rounds per node and result",
        labels=["node", "result"],
    )
    reputation = GaugeMetricFamily(
        "depin_gateway_storage_node_reputation", "Node reputation (0..1)", labels=["node"]
    )
    for node in storage.get("nodes", []):
        proofs.add_metric([node["url"], "passed"], node.get("proofs_passed", 0))
        proofs.add_metric([node["url"], "failed"], node.get("proofs_failed", 0))
        reputation.add_metric([node["url"]], node.get("reputation", 0.0))
    yield proofs
    yield reputation
    yield CounterMetricFamily("depin_gateway_repairs", "Fragments rebuilt and placed again",
                              value=storage.get("repairs", 0))  # fmt: skip
    fil = storage.get("fil", {})
    for name in ("spent", "committed", "budget"):
        yield GaugeMetricFamily(f"depin_gateway_fil_{name}_attofil", f"attoFIL {name}",
                                value=float(int(fil.get(name, 0))))  # fmt: skip
    yield GaugeMetricFamily("depin_gateway_fragments_proven", "Fragments proven on their node",
                            value=storage.get("fragments_proven", 0))  # fmt: skip


def prometheus_text(snapshot: StatusSnapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
