"""Benchmark the sealing core on realistic sensor readings.

    .venv/bin/python bench/bench_seal.py [--quick]

Prints machine info, then: seal and open throughput (readings in -> fragments out), compression
ratio against gzip -6 and zstd without a dictionary, Ed25519 signatures/s, zfec encode MB/s, and
commP MB/s next to hashlib.sha256 MB/s.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.piece.commp import commp
from gateway.seal import DictionaryTrainer, erasure, open_batch, seal_batch, seal_dictionary
from gateway.seal.codec import encode_readings
from gateway.seal.compress import compress
from gateway.seal.synthetic import SensorFleet

MB = 1_000_000


def _best(func: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> None:
    print("== machine")
    print(f"cpu      {_cpu()} ({os.cpu_count()} logical, {platform.machine()})")
    print(f"system   {platform.system()} {platform.release()}")
    print(f"python   {sys.version.split()[0]} ({platform.python_implementation()})")
    libs = ("zstandard", "pynacl", "zfec", "cbor2")
    print("libs     " + ", ".join(f"{lib} {version(lib)}" for lib in libs))


def seal_throughput(batch_size: int, batches: int, level: int) -> None:
    fleet = SensorFleet(seed=1)
    trainer = DictionaryTrainer()
    for reading in fleet.readings(3000):
        trainer.observe(reading)
    zdict = trainer.train()
    identity, owner = SigningKey.generate(), PrivateKey.generate()
    stored = seal_dictionary(zdict, [owner.public_key]) if zdict else None
    work = [fleet.readings(batch_size) for _ in range(batches)]
    payload = sum(len(r.payload) for batch in work for r in batch)
    sealed = []
    start = time.perf_counter()
    prev = None
    for seq, readings in enumerate(work):
        batch = seal_batch(
            readings,
            identity=identity,
            owners=[owner.public_key],
            seq=seq,
            prev=prev,
            zstd_level=level,
            dictionary=stored,
        )
        prev = batch.header_cid
        sealed.append(batch)
    seal_s = time.perf_counter() - start
    start = time.perf_counter()
    for batch in sealed:
        fragments = {i: f for i, f in enumerate(batch.fragments) if i not in (0, 1)}
        open_batch(batch.signed, fragments, owner, stored.data if stored else None)
    open_s = time.perf_counter() - start
    count = batch_size * batches
    out = sum(b.stats.fragment_bytes for b in sealed)
    print(
        f"seal  zstd-{level:<2d} {batch_size:4d}/batch: {payload / MB / seal_s:6.2f} MB/s payload, "
        f"{count / seal_s:8.0f} readings/s, {seal_s / batches * 1000:6.1f} ms/batch; "
        f"fragments out {out / payload:.2f} x payload"
    )
    print(
        f"open  zstd-{level:<2d} {batch_size:4d}/batch: {payload / MB / open_s:6.2f} MB/s payload, "
        f"{count / open_s:8.0f} readings/s (from 4 of 6 fragments, parity decode)"
    )


def ratios(batch_sizes: tuple[int, ...], level: int) -> None:
    fleet = SensorFleet(seed=2)
    trainer = DictionaryTrainer()
    for reading in fleet.readings(3000):
        trainer.observe(reading)
    zdict = trainer.train()
    assert zdict is not None
    print(f"dictionary {len(zdict.data)} bytes from {len(trainer.families())} topic families")
    for size in batch_sizes:
        sums = dict.fromkeys(("plain", "jsonl", "gzip", "gzip_jsonl", "zstd", "dict"), 0)
        for _ in range(5):
            readings = fleet.readings(size)
            plain = encode_readings(readings)
            jsonl = "\n".join(r.restore_line(0) for r in readings).encode()
            sums["plain"] += len(plain)
            sums["jsonl"] += len(jsonl)
            sums["gzip"] += len(gzip.compress(plain, 6, mtime=0))
            sums["gzip_jsonl"] += len(gzip.compress(jsonl, 6, mtime=0))
            sums["zstd"] += len(compress(plain, level=level))
            sums["dict"] += len(compress(plain, level=level, dictionary=zdict))
        r_gzip = sums["plain"] / sums["gzip"]
        r_zstd = sums["plain"] / sums["zstd"]
        r_dict = sums["plain"] / sums["dict"]
        print(
            f"ratio {size:5d} readings (codec bytes): gzip-6 {r_gzip:5.2f}x  zstd-{level} "
            f"{r_zstd:5.2f}x  zstd-{level}+dict {r_dict:5.2f}x  -> {r_dict / r_gzip:.2f}x gzip, "
            f"{r_dict / r_zstd:.2f}x zstd"
        )
        print(
            f"      {size:5d} readings (vs restore JSON lines): gzip-6 of JSONL "
            f"{sums['jsonl'] / sums['gzip_jsonl']:5.2f}x, sealed "
            f"{sums['jsonl'] / sums['dict']:5.2f}x -> {sums['gzip_jsonl'] / sums['dict']:.2f}x gzip"
        )


def signatures(seconds: float = 1.0) -> None:
    key = SigningKey.generate()
    message = os.urandom(1000)  # about one header's canonical encoding
    signed = key.sign(message)
    for name, func in (
        ("sign  ", lambda: key.sign(message)),
        ("verify", lambda: key.verify_key.verify(signed)),
    ):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                func()
            count += 100
        print(f"ed25519 {name} {count / (time.perf_counter() - start):9.0f} /s (1000-byte message)")


def zfec_and_hashes(size: int, repeat: int) -> None:
    data = os.urandom(size)
    t = _best(lambda: erasure.encode(data, 4, 2), repeat)
    print(f"zfec encode k=4 m=2 {size // MB} MB: {size / MB / t:8.1f} MB/s input")
    params, fragments = erasure.encode(data, 4, 2)
    kept = {i: fragments[i] for i in (2, 3, 4, 5)}
    t = _best(lambda: erasure.decode(params, kept, 0), repeat)
    print(f"zfec decode (2 parity) {size // MB} MB: {size / MB / t:8.1f} MB/s output")
    t_commp = _best(lambda: commp(data), repeat)
    t_sha = _best(lambda: hashlib.sha256(data).digest(), repeat)
    print(f"commP  {size // MB} MB: {size / MB / t_commp:8.1f} MB/s")
    print(f"sha256 {size // MB} MB: {size / MB / t_sha:8.1f} MB/s (commP = {t_commp / t_sha:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    quick = parser.parse_args().quick
    machine()
    print("== seal / open (k=4, m=2, 1 owner, trained dictionary)")
    for level in (3, 9, 19):
        seal_throughput(500, 4 if quick else 20, level)
    print("== compression")
    ratios((50, 200, 1000), 9)
    print("== primitives")
    signatures(0.3 if quick else 1.0)
    zfec_and_hashes(4 * MB if quick else 16 * MB, 2 if quick else 3)


if __name__ == "__main__":
    main()
