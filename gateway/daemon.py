"""The gateway daemon (``depin-gateway run``): wires the stages of the data path together.

    sources (MQTT, serial) -> IngestSink -> Spool            (gateway/ingest, gateway/spool)
    Spool -> Batcher -> Vault (sealed batches)               (gateway/batcher.py, gateway/seal)
    status HTTP: /status /metrics /healthz                   (gateway/status_http.py)

State directory layout::

    <state_dir>/identity.key      Ed25519 identity (0600)
    <state_dir>/spool/            write-ahead log segments + "released" watermark
    <state_dir>/quarantine/       rejected messages, bounded
    <state_dir>/vault/            sealed batches (header, fragments, dictionary objects)
    <state_dir>/ledger/           storage ledger: deals, placements, proofs (gateway/deals)
    <state_dir>/deals/            rebuilt fragments, ledger snapshots, cached proof layers
    <state_dir>/daemon.json       small state (started count), written atomically
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.batcher import Batcher
from gateway.budget import DiskBudget
from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.deals import StorageService
from gateway.errors import GatewayError, KeyMaterialError, StorageError
from gateway.fleet import HeartbeatPublisher
from gateway.identity import Identity
from gateway.ingest.mqtt import MqttIngest
from gateway.ingest.serial import SerialIngest
from gateway.ingest.sink import IngestSink
from gateway.keys import format_gateway_public, parse_owner_public
from gateway.sdnotify import notify, watchdog_interval
from gateway.seal import Vault
from gateway.spool import Spool
from gateway.status import StatusSnapshot

__all__ = ["Gateway", "run"]

log = logging.getLogger(__name__)


def identity_path(config: Config) -> Path:
    return config.state_dir / "identity.key"


class Gateway:
    """Owns every component; ``snapshot()`` is safe to call from the event loop at any time."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.started = time.monotonic()
        state = config.state_dir
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                str(state), f"cannot create state directory: {exc.strerror}"
            ) from exc
        if not identity_path(config).exists():
            raise KeyMaterialError(
                str(identity_path(config)),
                "no identity key; run: depin-gateway init --config " + str(config.path or "CONFIG"),
            )
        self.identity = Identity(state)
        self.spool = Spool(state / "spool", config.spool.segment_size)
        self.quarantine = Spool(state / "quarantine", max(4096, config.mqtt.quarantine_size // 4))
        self.budget = DiskBudget(
            state,
            config.gateway.disk_budget,
            config.gateway.high_watermark,
            config.gateway.low_watermark,
            usage=self.disk_used,
        )
        self.sink = IngestSink(
            self.spool,
            self.quarantine,
            self.budget,
            self.clock,
            commit_interval=config.spool.commit_interval,
            commit_max=config.spool.commit_max_readings,
            dedup_window=config.spool.dedup_window,
            quarantine_size=config.mqtt.quarantine_size,
        )
        self.mqtt = MqttIngest(config.mqtt, self.sink) if config.mqtt.enabled else None
        self.serial: list[Any] = [
            SerialIngest.from_config(entry, self.sink) for entry in config.serial
        ]
        self.extra_usage: list[Any] = []
        self.errors: dict[str, str] = {}
        self.batcher = self._make_batcher()
        self.storage = self._make_storage()
        self.fleet = self._make_fleet()

    def _make_storage(self) -> StorageService | None:
        """The deal/proving client, when storage nodes or a fleet broker (asks) are configured."""
        if self.batcher is None or not (self.config.storage.nodes or self.config.fleet.broker):
            return None
        service = StorageService(self.config, self.batcher.vault, self.identity.key)
        self.batcher.on_sealed.append(service.notify_sealed)
        return service

    def _make_fleet(self) -> HeartbeatPublisher | None:
        """Signed heartbeats on the fleet broker (gateway/fleet), when [fleet] broker is set."""
        if not self.config.fleet.broker:
            return None
        return HeartbeatPublisher(self.config.fleet.broker, lambda: self.identity.key,
                                  self.config.gateway.id, self.snapshot,
                                  self.config.fleet.heartbeat_interval)  # fmt: skip

    def _make_batcher(self) -> Batcher | None:
        owners = [parse_owner_public(key) for key in self.config.owner.public_keys]
        if not owners:
            self.errors["seal"] = "no [owner] public_keys: readings stay unsealed in the spool"
            return None
        batcher = Batcher(self.spool, Vault(self.config.state_dir), self.identity, owners,
                          self.config.batch, self.config.storage, self.clock)  # fmt: skip
        self.sink.on_durable.append(batcher.notify)
        self.extra_usage.append(lambda: batcher.vault.bytes_used)
        return batcher

    def disk_used(self) -> int:
        used = self.spool.bytes_on_disk + self.quarantine.bytes_on_disk
        return used + sum(int(provider()) for provider in self.extra_usage)

    def start(self) -> None:
        self.sink.start()
        if self.batcher is not None:
            self.batcher.start()
        if self.storage is not None:
            self.storage.start()
        if self.mqtt is not None:
            self.mqtt.start()
        for port in self.serial:
            port.start()
        if self.fleet is not None:
            self.fleet.start()

    def stop(self) -> None:
        """Graceful: stop sources first, then make everything received durable and ack it."""
        if self.fleet is not None:
            self.fleet.stop()  # publishes the signed "offline" heartbeat
        for port in self.serial:
            port.stop()
        if self.mqtt is not None:
            self.sink.commit_now()
            self.mqtt.stop()
        self.sink.stop()
        if self.batcher is not None:
            self.batcher.stop(seal_rest=True)  # a clean shutdown seals what is pending
        if self.storage is not None:
            self.storage.stop()
        self.spool.close()
        self.quarantine.close()

    def snapshot(self) -> StatusSnapshot:
        spool = self.spool.stats()
        sink = self.sink.stats()
        budget = self.budget.check()
        sources: dict[str, Any] = {}
        if self.mqtt is not None:
            m = self.mqtt.stats()
            sources["mqtt"] = {
                "connected": m.connected,
                "broker": f"{self.config.mqtt.host}:{self.config.mqtt.port}",
                "received": m.received,
                "connects": m.connects,
                "disconnects": m.disconnects,
                "rejected": m.rejected,
                "receive_maximum": m.receive_maximum,
                "last_error": m.last_error,
            }
        for port in self.serial:
            sources[f"serial:{port.name}"] = port.stats()
        last_errors = dict(self.errors)
        if self.fleet is not None and self.fleet.last_error:
            last_errors["fleet"] = self.fleet.last_error
        seal: dict[str, Any] = {"enabled": self.batcher is not None}
        batches_sealed = 0
        if self.batcher is not None:
            b = self.batcher.stats()
            batches_sealed = b.batches_sealed
            seal |= {
                "readings_sealed": b.readings_sealed,
                "last_compression_ratio": b.last_compression_ratio,
                "vault_bytes": b.vault_bytes,
                "dictionary": b.dictionary_id,
                "data_fragments": self.config.storage.data_fragments,
                "parity_fragments": self.config.storage.parity_fragments,
            }
            if b.last_error:
                last_errors["seal"] = b.last_error
        if sink.last_error:
            last_errors["spool"] = sink.last_error
        for name, source in sources.items():
            if source.get("last_error"):
                last_errors[name] = source["last_error"]
        storage: dict[str, Any] = {"enabled": False}
        if self.storage is not None:
            storage = self.storage.stats()
            if storage.get("last_error"):
                last_errors["storage"] = storage["last_error"]
        clock_synced = bool(getattr(self.clock, "synced", False))
        details = {
            "clock": {"synced": clock_synced, "boot_id": self.clock.now().boot_id},
            "sources": sources,
            "spool": {
                "pending": spool.pending,
                "unflushed": spool.unflushed,
                "bytes": spool.bytes_on_disk,
                "segments": spool.segments,
                "next_seq": spool.next_seq,
                "released_upto": spool.released_upto,
                "commits": sink.commits,
                "damaged_bytes": spool.damaged_bytes,
                "truncated_bytes": spool.truncated_bytes,
            },
            "seal": seal,
            "storage": storage,
            "duplicates_dropped": sink.duplicates,
            "quarantine": {
                "by_reason": sink.quarantined,
                "bytes": self.quarantine.bytes_on_disk,
                "dropped": sink.quarantine_dropped,
            },
            "disk": {
                "used": budget.used,
                "budget": budget.budget,
                "fraction": round(budget.fraction, 4),
                "filesystem_free": budget.filesystem_free,
                "bytes_written": spool.bytes_written + self.quarantine.stats().bytes_written,
                "fsyncs": spool.fsyncs,
            },
            "last_error": last_errors,
        }
        return StatusSnapshot(
            gateway_id=self.config.gateway.id,
            public_key=format_gateway_public(self.identity.key.verify_key),
            version=__version__,
            uptime_s=time.monotonic() - self.started,
            readings_total=spool.next_seq - 1 - spool.unflushed,
            spool_pending=spool.pending,
            batches_sealed=batches_sealed,
            batches_durable=int(storage.get("batches_durable", 0)),
            quarantined=sum(sink.quarantined.values()),
            backpressure=budget.backpressure,
            ledger_head=storage.get("ledger_head"),
            details=details,
        )


async def _serve(gateway: Gateway, stop: asyncio.Event) -> None:
    from gateway.status_http import start_status_server

    runner = await start_status_server(
        gateway.snapshot, gateway.config.status.host, gateway.config.status.port
    )
    notify("READY=1\nSTATUS=ingesting")
    watchdog = watchdog_interval()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=watchdog or 1.0)
            gateway.budget.check()
            if watchdog:
                notify("WATCHDOG=1")
    finally:
        notify("STOPPING=1")
        await runner.cleanup()


def run(config: Config) -> int:
    """Run until SIGTERM/SIGINT; a clean stop commits and acks everything received."""
    gateway = Gateway(config)
    gateway.start()
    stop_file = config.state_dir / "daemon.json"
    with contextlib.suppress(OSError):
        previous = json.loads(stop_file.read_text()) if stop_file.exists() else {}
        stop_file.write_text(
            json.dumps({"starts": int(previous.get("starts", 0)) + 1, "pid": os.getpid()})
        )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(_serve(gateway, stop))
    except GatewayError:
        raise
    finally:
        gateway.stop()
        loop.close()
    return 0
