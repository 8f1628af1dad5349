"""The status snapshot as Prometheus text (GET /metrics), read from its typed values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.status.sections import DiskStatus, MqttStatus, StorageStatus
from gateway.status.snapshot import Sources, StatusSnapshot

__all__ = ["prometheus_text"]

Metric = GaugeMetricFamily | CounterMetricFamily


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: StatusSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
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
            value=int(bool(s.health.degraded)),
        )
        yield from _disk_metrics(s.disk)
        yield from _source_metrics(s.sources)
        if s.storage is not None:
            yield from _storage_metrics(s.storage)


def _disk_metrics(disk: DiskStatus) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "depin_gateway_disk_used_bytes", "Bytes counted against the budget", value=disk.used
    )
    yield GaugeMetricFamily("depin_gateway_disk_budget_bytes", "Disk budget", value=disk.budget)
    yield CounterMetricFamily(
        "depin_gateway_disk_written_bytes", "Bytes written (SD-card wear)", value=disk.bytes_written
    )


def _source_metrics(all_sources: Sources) -> Iterator[Metric]:
    sources = CounterMetricFamily(
        "depin_gateway_source_received", "Messages received per source", labels=["source"]
    )
    connected = GaugeMetricFamily(
        "depin_gateway_source_connected", "1 while a source is connected", labels=["source"]
    )
    for name, source in all_sources.items():
        # Serial ports count frames, not messages: 0 here, as before the status was typed.
        sources.add_metric([name], source.received if isinstance(source, MqttStatus) else 0)
        connected.add_metric([name], int(source.connected))
    yield sources
    yield connected


def _storage_metrics(storage: StorageStatus) -> Iterator[Metric]:
    proofs = CounterMetricFamily(
        "depin_gateway_storage_node_proofs",
        "Proof rounds per node and result",
        labels=["node", "result"],
    )
    reputation = GaugeMetricFamily(
        "depin_gateway_storage_node_reputation", "Node reputation (0..1)", labels=["node"]
    )
    for node in storage.nodes:
        proofs.add_metric([node.url, "passed"], node.proofs_passed)
        proofs.add_metric([node.url, "failed"], node.proofs_failed)
        reputation.add_metric([node.url], node.reputation)
    yield proofs
    yield reputation
    yield CounterMetricFamily("depin_gateway_repairs", "Fragments rebuilt and placed again",
                              value=storage.repairs)  # fmt: skip
    fil = storage.fil
    for name, amount in (("spent", fil.spent), ("committed", fil.committed),
                         ("budget", fil.budget)):  # fmt: skip
        yield GaugeMetricFamily(f"depin_gateway_fil_{name}_attofil", f"attoFIL {name}",
                                value=float(amount))  # fmt: skip
    yield GaugeMetricFamily("depin_gateway_fragments_proven", "Fragments proven on their node",
                            value=storage.fragments_proven)  # fmt: skip
    yield from _foc_metrics(storage.backends.get("foc", {}))


def _foc_metrics(foc: Mapping[str, Any]) -> Iterator[Metric]:
    """Per FOC provider: pieces, proven, failed, USDFC committed and spent (an estimate)."""
    if not foc.get("enabled"):
        return
    rows = foc.get("providers", [])
    for key, help_text in (("pieces", "Live FOC pieces"), ("proven", "FOC pieces proven"),
                           ("failed", "FOC pieces failed")):  # fmt: skip
        family = GaugeMetricFamily(f"depin_gateway_foc_{key}", help_text, labels=["provider"])
        for row in rows:
            family.add_metric([str(row["provider_id"])], row.get(key, 0))
        yield family
    for key, name in (("usdfc_committed", "committed"), ("usdfc_spent_estimate", "spent")):
        family = GaugeMetricFamily(f"depin_gateway_foc_usdfc_{name}",
                                   f"USDFC {name} (base units, 1e-18 USDFC)",
                                   labels=["provider"])  # fmt: skip
        for row in rows:
            family.add_metric([str(row["provider_id"])], float(int(row.get(key, 0))))
        yield family
    yield GaugeMetricFamily("depin_gateway_foc_spending_stopped", "1 while FOC spending is stopped",
                            value=int(foc.get("spending") == "stopped"))  # fmt: skip


def prometheus_text(snapshot: StatusSnapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
