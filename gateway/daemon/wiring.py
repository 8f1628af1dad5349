"""The gateway daemon (``depin-gateway run``): wires the stages of the data path together.

    sources (MQTT, serial) -> IngestSink -> Spool            (gateway/ingest, gateway/spool)
    Spool -> Batcher -> Vault (sealed batches)               (gateway/batcher.py, gateway/seal)
    status HTTP: /status /metrics /healthz                   (gateway/daemon/http.py)

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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.daemon.snapshot import iso_time, spool_section
from gateway.errors import GatewayError, KeyMaterialError, StorageError
from gateway.ingest.budget import BudgetState, DiskBudget
from gateway.ingest.mqtt import MqttIngest
from gateway.ingest.serial import SerialIngest
from gateway.ingest.sink import IngestSink
from gateway.keys import format_gateway_public, parse_owner_public
from gateway.keys.identity import Identity
from gateway.sdnotify import notify, watchdog_interval
from gateway.seal import Vault
from gateway.seal.batcher import Batcher
from gateway.spool import Spool, SpoolStats
from gateway.status import StatusSnapshot
from gateway.supervise import Supervisor, install_excepthook, process_probe

if TYPE_CHECKING:  # imported where configured: each pulls aiohttp, apscheduler or paho
    from gateway.deals import StorageService
    from gateway.fleet import HeartbeatPublisher
    from gateway.ingest.mqtt_paho import PahoMqttIngest

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
        self.mqtt = _mqtt_ingest(config, self.sink) if config.mqtt.enabled else None
        self.serial: list[SerialIngest] = [
            SerialIngest.from_config(entry, self.sink) for entry in config.serial
        ]
        self.extra_usage: list[Any] = []
        self.errors: dict[str, str] = {}
        self.supervisor = Supervisor()
        self.batcher = self._make_batcher()
        self.storage = self._make_storage()
        self.fleet = self._make_fleet()

    def _make_storage(self) -> StorageService | None:
        """The deal/proving client, when storage nodes or a fleet broker (asks) are configured."""
        if self.batcher is None or not (self.config.storage.nodes or self.config.fleet.broker):
            return None
        from gateway.deals import StorageService

        service = StorageService(self.config, self.batcher.vault, self.identity.key)
        self.batcher.on_sealed.append(service.notify_sealed)
        return service

    def _make_fleet(self) -> HeartbeatPublisher | None:
        """Signed heartbeats on the fleet broker (gateway/fleet), when [fleet] broker is set."""
        if not self.config.fleet.broker:
            return None
        from gateway.fleet import HeartbeatPublisher

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
        install_excepthook()  # paho's thread is not ours: its uncaught exception is the cause
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
        self.supervise()

    def stop(self) -> None:
        """Graceful: stop sources first, then make everything received durable and ack it."""
        self.supervisor.stopping()  # threads that end from here on end on purpose
        if self.fleet is not None:
            self.fleet.stop()  # publishes the signed "offline" heartbeat
        for port in self.serial:
            port.stop()
        # The committer first: its last group's acks must be queued in paho before the
        # disconnect (paho drains its out queue before its thread ends). Stopping MQTT first lost
        # the acks of a group still being fsynced, so a clean restart saw them redelivered.
        self.sink.stop()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.batcher is not None:
            self.batcher.stop(seal_rest=True)  # a clean shutdown seals what is pending
        if self.storage is not None:
            self.storage.stop()
        self.spool.close()
        self.quarantine.close()

    def supervise(self) -> None:
        """Register every running part with the supervisor (after ``start``)."""
        watch = self.supervisor.watch_thread
        watch("spool-commit", lambda: self.sink.thread)
        if (batcher := self.batcher) is not None:
            watch("sealer", lambda: batcher.thread)
            self.supervisor.watch("seal-worker", process_probe(batcher.worker.poll))
        if (storage := self.storage) is not None:
            watch("storage", lambda: storage.thread)
        if (mqtt := self.mqtt) is not None:
            watch("mqtt", lambda: mqtt.network_thread)
        for port in self.serial:
            watch(port.source, _thread_of(port))
        if (fleet := self.fleet) is not None:
            watch("fleet", lambda: fleet.thread)
            watch("fleet-mqtt", lambda: fleet.network_thread)

    def snapshot(self) -> StatusSnapshot:
        spool = self.spool.stats()
        sink = self.sink.stats()
        budget = self.budget.check()
        sources = self._sources()
        seal, batches_sealed = self._seal_section()
        storage: dict[str, Any] = {"enabled": False}
        if self.storage is not None:
            storage = self.storage.stats()
        stopped = {death.component: death.cause for death in self.supervisor.check()}
        details = {
            "clock": {"synced": bool(getattr(self.clock, "synced", False)),
                      "boot_id": self.clock.now().boot_id},
            "sources": sources,
            "spool": spool_section(spool, sink.commits),
            "seal": seal,
            "storage": storage,
            "duplicates_dropped": sink.duplicates,
            "quarantine": {"by_reason": sink.quarantined, "bytes": self.quarantine.bytes_on_disk,
                           "dropped": sink.quarantine_dropped},
            "disk": self._disk_section(budget, spool),
            "stopped": stopped,
            "last_error": self._last_errors(sources, seal, storage, sink.last_error, stopped),
        }  # fmt: skip
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
            healthy=not stopped,
            degraded=self._degraded(budget),
        )

    def _sources(self) -> dict[str, Any]:
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
        return sources

    def _seal_section(self) -> tuple[dict[str, Any], int]:
        seal: dict[str, Any] = {"enabled": self.batcher is not None}
        if self.batcher is None:
            return seal, 0
        b = self.batcher.stats()
        seal |= {
            "readings_sealed": b.readings_sealed,
            "last_compression_ratio": b.last_compression_ratio,
            "vault_bytes": b.vault_bytes,
            "dictionary": b.dictionary_id,
            "data_fragments": self.config.storage.data_fragments,
            "parity_fragments": self.config.storage.parity_fragments,
            "last_error": b.last_error,
        }
        return seal, b.batches_sealed

    def _last_errors(self, sources: dict[str, Any], seal: dict[str, Any],
                     storage: dict[str, Any], spool_error: str | None,
                     stopped: dict[str, str]) -> dict[str, str]:  # fmt: skip
        errors = dict(self.errors)
        if self.fleet is not None and self.fleet.last_error:
            errors["fleet"] = self.fleet.last_error
        if seal.get("last_error"):
            errors["seal"] = seal["last_error"]
        if spool_error:
            errors["spool"] = spool_error
        for name, source in sources.items():
            if source.get("last_error"):
                errors[name] = source["last_error"]
        if storage.get("last_error"):
            errors["storage"] = storage["last_error"]
        return errors | stopped  # a component's death is its last word

    def _disk_section(self, budget: BudgetState, spool: SpoolStats) -> dict[str, Any]:
        backoff = self.batcher.backoff() if self.batcher is not None else None
        retry: dict[str, Any] | None = None
        if backoff is not None:
            retry = {
                "failures": backoff.failures,
                "next_retry_at": iso_time(backoff.retry_at_wall),
                "next_retry_in_s": round(max(0.0, backoff.retry_at - time.monotonic()), 1),
                "needed_bytes": backoff.needed_bytes,
                "waiting_for_space": backoff.waiting_for_space,
                "error": backoff.error,
            }
        return {
            "used": budget.used,
            "budget": budget.budget,
            "fraction": round(budget.fraction, 4),
            "filesystem_free": budget.filesystem_free,
            "reserve": budget.reserve,
            "below_reserve": budget.below_reserve,
            "seal_backoff": retry,
            "bytes_written": spool.bytes_written + self.quarantine.stats().bytes_written,
            "fsyncs": spool.fsyncs,
        }

    def _degraded(self, budget: BudgetState) -> tuple[str, ...]:
        """Why ingest or sealing cannot make progress now (each a line for /healthz)."""
        reasons = []
        if budget.below_reserve:
            reasons.append(f"disk full: {budget.filesystem_free} bytes free, below the reserve "
                           f"of {budget.reserve}; not acking new readings")  # fmt: skip
        elif budget.backpressure:
            reasons.append(f"disk budget reached: {budget.used} of {budget.budget} bytes; "
                           "not acking new readings")  # fmt: skip
        backoff = self.batcher.backoff() if self.batcher is not None else None
        if backoff is not None:
            when = "at " + iso_time(backoff.retry_at_wall)
            if backoff.waiting_for_space:
                when = f"once {backoff.needed_bytes} bytes are free, at the latest {when}"
            reasons.append(f"sealing failed {backoff.failures} times, next retry {when}: "
                           f"{backoff.error}")  # fmt: skip
        if self.sink.failing:
            reasons.append(f"spool commits failing: {self.sink.last_error}")
        return tuple(reasons)


def _mqtt_ingest(config: Config, sink: IngestSink) -> MqttIngest | PahoMqttIngest:
    """Our MQTT 5 client unless the config asks for paho (imported only then: ~11 MB)."""
    if config.mqtt.client == "paho":
        from gateway.ingest.mqtt_paho import PahoMqttIngest

        return PahoMqttIngest(config.mqtt, sink)
    return MqttIngest(config.mqtt, sink)


def _thread_of(port: SerialIngest) -> Callable[[], threading.Thread | None]:
    return lambda: port.thread


async def _serve(gateway: Gateway, stop: asyncio.Event) -> None:
    from gateway.daemon.http import start_status_server

    runner = await start_status_server(
        gateway.snapshot, gateway.config.status.host, gateway.config.status.port
    )
    notify("READY=1\nSTATUS=ingesting")
    try:
        await _watch(gateway, stop)
    finally:
        notify("STOPPING=1")
        await runner.cleanup()


async def _watch(gateway: Gateway, stop: asyncio.Event) -> None:
    """Feed the systemd watchdog only while every component runs: once one stopped, say why
    (STATUS=), ask systemd to act now (WATCHDOG=trigger) and never send WATCHDOG=1 again, so
    systemd restarts the service even if it does not support the trigger."""
    watchdog = watchdog_interval()
    tick = min(watchdog, 1.0) if watchdog else 1.0  # a death is noticed within a second
    unhealthy = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick)
        if stop.is_set():
            return
        gateway.budget.check()
        deaths = gateway.supervisor.check()
        if deaths and not unhealthy:
            unhealthy = True
            reason = "; ".join(f"{d.component}: {d.cause}" for d in deaths)
            notify(f"STATUS=unhealthy: {reason}" + ("\nWATCHDOG=trigger" if watchdog else ""))
        if watchdog and not unhealthy:
            notify("WATCHDOG=1")


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
