"""The gateway daemon (``depin-gateway run``): wires the stages of the data path together.

    sources (MQTT, serial) -> IngestSink -> Spool            (gateway/ingest, gateway/spool)
    Spool -> Batcher -> Vault (sealed batches)               (gateway/seal)
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
from gateway.daemon.snapshot import (
    degraded,
    disk_status,
    seal_backoff_status,
    spool_status,
    storage_status,
)
from gateway.errors import GatewayError, KeyMaterialError, StorageError
from gateway.ingest.budget import DiskBudget
from gateway.ingest.mqtt import MqttIngest
from gateway.ingest.serial import SerialIngest
from gateway.ingest.sink import IngestSink
from gateway.keys import format_gateway_public, parse_owner_public
from gateway.keys.identity import Identity
from gateway.sdnotify import notify, watchdog_interval
from gateway.seal import Vault
from gateway.seal.batcher import Batcher
from gateway.spool import Spool
from gateway.status import (
    ClockStatus,
    Health,
    QuarantineStatus,
    SealStatus,
    Sources,
    StatusSnapshot,
    StorageStatus,
)
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
        """The storage client, when nodes, a fleet broker (asks) or [foc] are configured."""
        wanted = self.config.storage.nodes or self.config.fleet.broker or self.config.foc
        if self.batcher is None or not wanted:
            return None
        from gateway.deals import StorageService

        service = StorageService(self.config, self.batcher.vault, self.identity.key)
        if self.config.foc is not None:
            from gateway.foc.backend import FocBackend  # only here: no [foc], no chain code

            service.backends.append(FocBackend(self.config, service.load_object))
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
            for backend in storage.backends:
                watch(backend.name, backend.thread)  # e.g. the FOC engine's thread
        if (mqtt := self.mqtt) is not None:
            watch("mqtt", lambda: mqtt.network_thread)
        for port in self.serial:
            watch(port.source, _thread_of(port))
        if (fleet := self.fleet) is not None:
            watch("fleet", lambda: fleet.thread)
            watch("fleet-mqtt", lambda: fleet.network_thread)

    def snapshot(self) -> StatusSnapshot:
        """Each component's typed status, composed (gateway/status); never a secret."""
        spool = self.spool.stats()
        sink = self.sink.stats()
        budget = self.budget.check()
        seal = self.batcher.stats() if self.batcher is not None else None
        backoff = self.batcher.backoff() if self.batcher is not None else None
        storage = storage_status(self.storage.stats()) if self.storage is not None else None
        sources = Sources(
            mqtt=self.mqtt.stats() if self.mqtt is not None else None,
            serial={port.name: port.stats() for port in self.serial},
        )
        stopped = {death.component: death.cause for death in self.supervisor.check()}
        written = spool.bytes_written + self.quarantine.stats().bytes_written
        return StatusSnapshot(
            gateway_id=self.config.gateway.id,
            public_key=format_gateway_public(self.identity.key.verify_key),
            version=__version__,
            uptime_s=time.monotonic() - self.started,
            clock=ClockStatus(
                synced=bool(getattr(self.clock, "synced", False)), boot_id=self.clock.now().boot_id
            ),
            sources=sources,
            spool=spool_status(spool, sink.commits),
            seal=seal,
            storage=storage,
            duplicates_dropped=sink.duplicates,
            quarantine=QuarantineStatus(
                by_reason=sink.quarantined,
                bytes=self.quarantine.bytes_on_disk,
                dropped=sink.quarantine_dropped,
            ),
            disk=disk_status(
                budget, seal_backoff_status(backoff, time.monotonic()), written, spool.fsyncs
            ),
            health=Health(
                stopped=stopped,
                last_error=self._last_errors(sources, seal, storage, sink.last_error, stopped),
                degraded=degraded(
                    budget, backoff, self.sink.last_error if self.sink.failing else None
                ),
            ),
        )

    def _last_errors(self, sources: Sources, seal: SealStatus | None,
                     storage: StorageStatus | None, spool_error: str | None,
                     stopped: dict[str, str]) -> dict[str, str]:  # fmt: skip
        errors = dict(self.errors)
        if self.fleet is not None and self.fleet.last_error:
            errors["fleet"] = self.fleet.last_error
        if seal is not None and seal.last_error:
            errors["seal"] = seal.last_error
        if spool_error:
            errors["spool"] = spool_error
        for name, source in sources.items():
            if source.last_error:
                errors[name] = source.last_error
        if storage is not None and storage.last_error:
            errors["storage"] = storage.last_error
        return errors | stopped  # a component's death is its last word


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
