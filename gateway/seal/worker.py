"""Sealing in a worker process, so the pure-Python codec never holds the ingest process's GIL.

The worker is ``python -m gateway.seal_worker``: it reads jobs from stdin and writes results to
stdout (length-prefixed pickles; parent and child are the same trusted program). It exits on
EOF, and the kernel kills it if the gateway dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the
gateway never leaves it behind. Only bytes and plain dataclasses cross the boundary: the worker
gets the identity seed and owner keys as bytes and returns the signed header block, fragments
and sizes; the parent re-parses the block (which checks it) and builds the ``SealedBatch``.
If the worker cannot be started, sealing runs in the calling thread. If it dies while running
(OOM killer, ``kill -9``), sealing continues in the calling thread too, but ``poll()`` reports the
exit, so the daemon's supervisor marks the gateway unhealthy and systemd restarts it with a
fresh worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import IO, Any

from nacl.public import PublicKey
from nacl.signing import SigningKey

from gateway.piece.dagcbor import cid_for_dag_cbor
from gateway.reading import Reading
from gateway.seal import DictionaryObject, KeyRotation, SealedBatch, SignedHeader, seal_batch
from gateway.spool.record import iter_from

__all__ = ["SealWorker", "at_resolution", "decode_records"]

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("<Q")
_PR_SET_PDEATHSIG = 1  # prctl(2)


def _send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 (our own child process, over its own pipe)


class SealWorker:
    def __init__(self, in_process: bool = False) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._died: int | None = None  # exit status of a worker that died under us
        if not in_process:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "gateway.seal.worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                )  # fmt: skip
            except OSError as exc:
                log.warning("sealing in-process (no worker process: %s)", exc)

    def seal_records(
        self,
        records: bytes,
        resolution_ns: int,
        *,
        identity: SigningKey,
        owners: Sequence[PublicKey],
        dictionary: DictionaryObject | None,
        rotation: KeyRotation | None,
        **options: Any,
    ) -> SealedBatch:
        """Seal spool records as stored (``Spool.raw_batch``): decoding them happens in the
        worker too, so the gateway never holds a batch of Reading objects."""
        options |= {"dictionary": dictionary, "rotation": rotation}
        with self._lock:
            process = self._process
            if process is not None and process.stdin is not None and process.stdout is not None:
                job = (records, resolution_ns, bytes(identity), [bytes(o) for o in owners],
                       options)  # fmt: skip
                try:
                    _send(process.stdin, job)
                    result = _receive(process.stdout)
                except (EOFError, OSError) as exc:
                    log.warning("seal worker failed (%s); sealing in-process from now on", exc)
                    self._died = self._stop_process()
                else:
                    if isinstance(result, BaseException):
                        raise result
                    block, fragments, stats = result
                    signed = SignedHeader.from_block(block)
                    cid = cid_for_dag_cbor(block)
                    return SealedBatch(signed, fragments, block, cid, dictionary, stats)
        readings = decode_records(records, resolution_ns)
        return seal_batch(readings, identity=identity, owners=owners, **options)

    def poll(self) -> int | None:
        """None while the worker runs (or was never wanted); its exit status once it died."""
        process = self._process
        if process is not None:
            return process.poll()
        return self._died

    def _stop_process(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def close(self) -> None:
        with self._lock:
            self._stop_process()


def at_resolution(readings: list[Reading], resolution_ns: int) -> list[Reading]:
    """Receive times rounded down to ``[batch] time_resolution`` (default 1 us, the resolution
    restore prints): nanoseconds from a Pi's clock are noise that costs ~2 bytes per reading."""
    if resolution_ns <= 1:
        return readings
    # In place: a second list of 10,000 readings beside the first was ~6 MB of the worker's peak.
    for index, r in enumerate(readings):
        readings[index] = replace(r, time=replace(
            r.time, wall_ns=r.time.wall_ns - r.time.wall_ns % resolution_ns,
            mono_ns=r.time.mono_ns - r.time.mono_ns % resolution_ns))  # fmt: skip
    return readings


def decode_records(records: bytes, resolution_ns: int) -> list[Reading]:
    return at_resolution(list(iter_from(memoryview(records), 0)), resolution_ns)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main() -> None:
    """The worker loop: one job in, one result (or the exception) out, until EOF."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when we stop
    # Sealing is background work: on a busy Pi, acking sensors comes first; the spool is
    # durable, so a sealer that falls behind costs disk, not data. Nice 19, not 10: on one core
    # (taskset -c 0) a worker at nice 10 still took enough CPU during a backlog drain to pull
    # the gateway below 0.8x the reference subscriber (bench/RESULTS.md); with spare CPU it
    # seals as fast as before, and the disk budget's backpressure bounds what waits.
    with contextlib.suppress(OSError):
        os.nice(19)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            records, resolution_ns, seed, owners, options = _receive(stdin)
        except EOFError:
            return
        try:
            readings = decode_records(records, resolution_ns)
            del records  # the raw batch is not needed once decoded (peak RSS)
            batch = seal_batch(readings, identity=SigningKey(seed),
                               owners=[PublicKey(o) for o in owners], **options)  # fmt: skip
            result: object = (batch.header_block, batch.fragments, batch.stats)
        except Exception as exc:  # sent back and raised in the gateway
            result = exc
        _send(stdout, result)


if __name__ == "__main__":
    main()
