"""The sealing stage: durable spool readings -> sealed batches in the vault -> spool released.

A thread wakes every second (and whenever the spool grows) and seals when the unsealed readings
reach ``[batch] max_readings`` or ``max_bytes``, or the oldest is ``max_age`` old; ``stop`` seals
what is left. Order of effects, so a crash at any instant neither loses nor duplicates::

    read readings after the watermark -> seal -> vault.put (fsynced, renamed) -> spool.release

On start, the watermark is moved up to the newest spool seq named by the vault's last header:
a crash between ``vault.put`` and ``spool.release`` must not seal those readings twice. A disk
error between the two (ENOSPC writing the watermark) is handled the same way while running: the
release is retried before anything new is sealed.

**Failures back off.** A seal that failed re-ran the whole seal every ~8 s, for nothing on a
full disk (36 % of a core). Now, when the vault could not store the batch (ENOSPC), its size is
remembered and the seal runs again as soon as the filesystem has that much free (checked once a
second, one statvfs), else after 5 min in case space is freed in a way the estimate misses.
Other failures (EIO, a bad record) are retried after 1 s, doubling to 5 min. Any success resets
the backoff. ``backoff()`` says why and until when, for status.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PublicKey

from gateway.clock import Clock
from gateway.config import BatchConfig, StorageConfig
from gateway.errors import GatewayError, StorageError
from gateway.fs import write_atomic
from gateway.keys.identity import Identity
from gateway.seal import (
    DictionaryObject,
    DictionaryTrainer,
    KeyRotation,
    SealedBatch,
    Vault,
    seal_dictionary,
)
from gateway.seal.worker import SealWorker, decode_records
from gateway.spool import Spool
from gateway.supervise import SupervisedThread, spawn

__all__ = [
    "Batcher",
    "BatcherStats",
    "last_sealed_spool_seq",
    "read_ledger_head",
    "record_ledger_head",
]

log = logging.getLogger(__name__)

RETRAIN_EVERY = 16  # batches between dictionary retraining
BACKOFF_FIRST = 1.0  # s: the first retry after a failed seal, doubled per failure
BACKOFF_MAX = 300.0  # s: a full disk costs at most one seal attempt per 5 minutes


def ledger_head_path(vault: Vault) -> Path:
    return vault.path.parent / "ledger-head.json"


def record_ledger_head(vault: Vault, seq: int, cid: str) -> None:
    write_atomic(ledger_head_path(vault), json.dumps({"seq": seq, "cid": cid}).encode())


def _batch_bytes(batch: SealedBatch) -> int:
    return len(batch.header_block) + sum(len(fragment) for fragment in batch.fragments)


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


@dataclass(frozen=True, slots=True)
class SealBackoff:
    """Why sealing is not running now: ``failures`` in a row, the next retry (monotonic and
    wall-clock seconds), and how many free bytes the failed batch needed (None if unknown)."""

    failures: int
    retry_at: float
    retry_at_wall: float
    needed_bytes: int | None
    error: str
    waiting_for_space: bool = False  # retried once ``needed_bytes`` are free, not by the clock


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
        self._thread: SupervisedThread | None = None
        self._lock = threading.Lock()
        self.free_space: Callable[[], int] = lambda: shutil.disk_usage(vault.path).free
        self._backoff: SealBackoff | None = None
        self._needed: int | None = None
        self._release_due: tuple[int, int, str] | None = None  # (last spool seq, batch, cid)
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
        self._thread = spawn(self._run, "sealer")

    @property
    def thread(self) -> SupervisedThread | None:
        return self._thread

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
            try:
                self.seal_due(force=True)
            except GatewayError as exc:  # durable in the spool; the next start seals them
                log.warning("readings left unsealed in the spool at shutdown: %s", exc)
        self.worker.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self._retry_due():
                continue
            try:
                self.seal_due()
            except GatewayError as exc:
                self._failed(exc)
            else:
                self._succeeded()

    # -- backoff ----------------------------------------------------------------------------

    def backoff(self) -> SealBackoff | None:
        return self._backoff

    def _retry_due(self) -> bool:
        backoff = self._backoff
        if backoff is None or time.monotonic() >= backoff.retry_at:
            return True
        if backoff.waiting_for_space and backoff.needed_bytes is not None:
            free = self._free()
            if free >= backoff.needed_bytes:
                log.info("%d bytes free again (a batch needs %d): sealing now", free,
                         backoff.needed_bytes)  # fmt: skip
                return True
        return False

    def _free(self) -> int:
        try:
            return self.free_space()
        except OSError:
            return 0

    def _failed(self, exc: GatewayError) -> None:
        failures = 1 if self._backoff is None else self._backoff.failures + 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(failures - 1, 20))
        # The batch cannot fit until space is freed: _retry_due watches the free space. If it
        # "fits" and still failed, the estimate is wrong, and only the clock drives retries.
        waiting = self._needed is not None and self._free() < self._needed
        if waiting:
            delay = BACKOFF_MAX
        error = str(exc)
        if self._backoff is None or self._backoff.error != error:  # once per cause, not per retry
            log.error("sealing failed, retrying with backoff (up to %.0f s): %s", BACKOFF_MAX, exc)
        self._backoff = SealBackoff(failures, time.monotonic() + delay, time.time() + delay,
                                    self._needed, error, waiting)  # fmt: skip
        self.last_error = f"{error} (attempt {failures}, next in {delay:.0f} s)"

    def _succeeded(self) -> None:
        if self._backoff is not None:
            log.info("sealing works again after %d failed attempts", self._backoff.failures)
        self._backoff = None
        self._needed = None
        self.last_error = None

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
            self._needed = None  # set again by this attempt if the vault is full
            self._finish_release()
            while force or self._due():
                records, count, last_seq = self.spool.raw_batch(
                    self.batch.max_readings, self.batch.max_bytes
                )
                if not count:
                    break
                self._seal(records, count, last_seq)
                sealed += 1
        return sealed

    def _finish_release(self) -> None:
        """After a batch is in the vault: the ledger head, then the spool watermark. Retried
        before the next seal if the disk refused them, so no reading is sealed twice."""
        if self._release_due is None:
            return
        last_seq, seq, cid = self._release_due
        try:
            # Remembered outside the vault so verify can tell a truncated chain from a short one.
            record_ledger_head(self.vault, seq, cid)
            self.spool.release(last_seq)
        except OSError as exc:
            raise StorageError(str(self.spool.directory), f"cannot release sealed readings: "
                               f"{exc.strerror or exc}") from exc  # fmt: skip
        self._release_due = None

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
        try:
            self.vault.put(batch)
        except StorageError:
            self._needed = _batch_bytes(batch)  # retry as soon as this much is free again
            raise
        self._release_due = (last_seq, batch.seq, str(batch.header_cid))
        if rotation is not None:
            self.identity.finish_rotation(batch.seq, rotation.new_key)
            log.info("identity rotated in batch %d", batch.seq)
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
        self._finish_release()

    def stats(self) -> BatcherStats:
        return BatcherStats(
            batches_sealed=self.batches_sealed,
            readings_sealed=self.readings_sealed,
            last_compression_ratio=self.last_ratio,
            vault_bytes=self.vault.bytes_used,
            dictionary_id=self.dictionary.id if self.dictionary else None,
            last_error=self.last_error,
        )
