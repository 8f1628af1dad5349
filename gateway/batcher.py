"""The sealing stage: durable spool readings -> sealed batches in the vault -> spool released.

A thread wakes every second (and whenever the spool grows) and seals when the unsealed readings
reach ``[batch] max_readings`` or ``max_bytes``, or the oldest is ``max_age`` old; ``stop`` seals
what is left. Order of effects, so a crash at any instant neither loses nor duplicates::

    read readings after the watermark -> seal -> vault.put (fsynced, renamed) -> spool.release

On start, the watermark is moved up to the newest spool seq named by the vault's last header:
a crash between ``vault.put`` and ``spool.release`` must not seal those readings twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PublicKey

from gateway.clock import Clock
from gateway.config import BatchConfig, StorageConfig
from gateway.errors import GatewayError, StorageError
from gateway.identity import Identity
from gateway.seal import (
    DictionaryObject,
    DictionaryTrainer,
    KeyRotation,
    Vault,
    seal_dictionary,
)
from gateway.seal_worker import SealWorker, decode_records
from gateway.spool import Spool, write_atomic

__all__ = [
    "Batcher",
    "BatcherStats",
    "last_sealed_spool_seq",
    "read_ledger_head",
    "record_ledger_head",
]

log = logging.getLogger(__name__)

RETRAIN_EVERY = 16  # batches between dictionary retraining


def ledger_head_path(vault: Vault) -> Path:
    return vault.path.parent / "ledger-head.json"


def record_ledger_head(vault: Vault, seq: int, cid: str) -> None:
    write_atomic(ledger_head_path(vault), json.dumps({"seq": seq, "cid": cid}).encode())


def read_ledger_head(vault: Vault) -> tuple[int, str] | None:
    try:
        data = json.loads(ledger_head_path(vault).read_text())
        return int(data["seq"]), str(data["cid"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(str(ledger_head_path(vault)), f"unreadable: {exc}") from exc


def last_sealed_spool_seq(vault: Vault) -> int:
    """The newest spool sequence number that some sealed batch holds (0 if none)."""
    last = vault.last_seq()
    if last is None:
        return 0
    header = vault.header(last).header
    return max(high for _, high in header.sources.values())


@dataclass(frozen=True, slots=True)
class BatcherStats:
    batches_sealed: int
    readings_sealed: int
    last_compression_ratio: float | None
    vault_bytes: int
    dictionary_id: str | None
    last_error: str | None


class Batcher:
    def __init__(
        self,
        spool: Spool,
        vault: Vault,
        identity: Identity,
        owners: Sequence[PublicKey],
        batch: BatchConfig,
        storage: StorageConfig,
        clock: Clock,
        seal_in_worker: bool = True,
    ) -> None:
        self.spool = spool
        self.vault = vault
        self.identity = identity
        last = vault.last_seq()
        if last is not None and (rotation := vault.header(last).header.rotation) is not None:
            identity.finish_rotation(last, rotation.new_key)  # a crash came between seal and swap
        self.owners = list(owners)
        self.batch = batch
        self.k = storage.data_fragments
        self.m = storage.parity_fragments
        self.clock = clock
        # Trained dictionaries pay for codec v1 (~1.2x); v2 already separates the repetitive
        # JSON structure from the values and gains ~1 % from one (bench/RESULTS.md), so it
        # spends neither the memory of the sample windows nor the training time.
        self.trainer = DictionaryTrainer() if batch.codec == "readings-cbor-v1" else None
        self.dictionary: DictionaryObject | None = None
        self._since_training = RETRAIN_EVERY
        self.worker = SealWorker(in_process=not seal_in_worker)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.readings_sealed = 0
        self.last_ratio: float | None = None
        self.last_error: str | None = None
        self.on_sealed: list[Callable[[int], None]] = []  # called with the seq after each seal
        self.batches_sealed = len(vault.seqs())
        sealed = last_sealed_spool_seq(vault)
        if sealed > spool.released_upto:
            log.info("spool readings up to %d are already sealed; releasing them", sealed)
            spool.release(sealed)

    # -- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def notify(self, _count: int = 0) -> None:
        """After each commit: wake at once only when a batch is full by count (cheap to know);
        the once-a-second check covers size and age."""
        if self.spool.stats().pending >= self.batch.max_readings:
            self._wake.set()

    def stop(self, seal_rest: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if seal_rest:
            self.seal_due(force=True)
        self.worker.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.seal_due()
                self.last_error = None
            except GatewayError as exc:
                self.last_error = str(exc)
                log.error("sealing failed, will retry: %s", exc)
                self._stop.wait(5.0)

    # -- sealing --------------------------------------------------------------------------

    def _due(self) -> bool:
        """From counters and the oldest unsealed reading only: this runs after every commit."""
        if self.spool.stats().pending >= self.batch.max_readings:
            return True
        # Records carry ~70 bytes of metadata per payload: this errs towards sealing early.
        if self.spool.unreleased_bytes() >= self.batch.max_bytes:
            return True
        oldest = next(iter(self.spool.readings()), None)
        if oldest is None:
            return False
        now = self.clock.now()
        if oldest.time.boot_id != now.boot_id:
            return True  # from before a reboot: its monotonic age is unknown, seal it now
        return (now.mono_ns - oldest.time.mono_ns) / 1e9 >= self.batch.max_age

    def seal_due(self, force: bool = False) -> int:
        """Seal every batch that is due (all pending readings when ``force``); returns count."""
        sealed = 0
        with self._lock:
            while force or self._due():
                records, count, last_seq = self.spool.raw_batch(
                    self.batch.max_readings, self.batch.max_bytes
                )
                if not count:
                    break
                self._seal(records, count, last_seq)
                sealed += 1
        return sealed

    def _seal(self, records: bytes, count: int, last_seq: int) -> None:
        head = self.vault.head()
        if self.trainer is not None and self._since_training >= RETRAIN_EVERY:
            trained = self.trainer.train()
            if trained is not None:
                self.dictionary = seal_dictionary(trained, self.owners)
            self._since_training = 0
        started = time.perf_counter()
        pending = self.identity.pending()
        rotation = KeyRotation.certify(self.identity.key, pending.verify_key) if pending else None
        batch = self.worker.seal_records(
            records,
            self.batch.time_resolution_ns,
            identity=self.identity.key,
            rotation=rotation,
            owners=self.owners,
            seq=self.vault.next_seq(),
            prev=head[1] if head else None,
            k=self.k,
            m=self.m,
            zstd_level=self.batch.zstd_level,
            codec_name=self.batch.codec,
            dictionary=self.dictionary,
        )
        self.vault.put(batch)
        # Remembered outside the vault so that verify can tell a truncated chain from a short one.
        record_ledger_head(self.vault, batch.seq, str(batch.header_cid))
        if rotation is not None:
            self.identity.finish_rotation(batch.seq, rotation.new_key)
            log.info("identity rotated in batch %d", batch.seq)
        self.spool.release(last_seq)
        for callback in self.on_sealed:
            callback(batch.seq)
        if self.trainer is not None:
            for reading in decode_records(records, 1):
                self.trainer.observe(reading)
        self._since_training += 1
        self.readings_sealed += count
        self.batches_sealed += 1
        self.last_ratio = batch.stats.compression_ratio
        log.info("sealed batch %d: %d readings, %.1fx compression, %.1f ms", batch.seq,
                 count, batch.stats.compression_ratio,
                 (time.perf_counter() - started) * 1000)  # fmt: skip

    def stats(self) -> BatcherStats:
        return BatcherStats(
            batches_sealed=self.batches_sealed,
            readings_sealed=self.readings_sealed,
            last_compression_ratio=self.last_ratio,
            vault_bytes=self.vault.bytes_used,
            dictionary_id=self.dictionary.id if self.dictionary else None,
            last_error=self.last_error,
        )
