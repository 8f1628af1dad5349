"""Benchmark the sealing core on realistic sensor readings.

    .venv/bin/python bench/bench_seal.py [--quick]

Prints machine info, then: seal and open throughput (readings in -> fragments out), compression
ratio (payload bytes in / sealed bytes out, codec v1 and v2, with and without the trained
dictionary) against gzip -6 and plain zstd over the same payloads, Ed25519 signatures/s, zfec
encode MB/s, and commP MB/s next to hashlib.sha256 MB/s.
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

import cbor2
from benchutil import cpu_model
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.piece.commp import commp
from gateway.seal import DictionaryTrainer, codec, erasure, open_batch, seal_batch, seal_dictionary
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


def machine() -> None:
    print("== machine")
    print(f"cpu      {cpu_model()} ({os.cpu_count()} logical, {platform.machine()})")
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


def ratios(batch_sizes: tuple[int, ...], level: int, repeat: int) -> None:
    """Payload bytes in / bytes out, per batch size, summed over ``repeat`` batches.

    gzip -6 and plain zstd compress the newline-joined payloads alone; the sealed figures
    (codec + zstd, before encryption) hold everything restore needs: payloads AND receive
    metadata (times, topics, keys, decoded views). "payload columns" is the v2 payload section
    compressed on its own: the like-for-like comparison with gzip.
    """
    fleet = SensorFleet(seed=2)
    trainer = DictionaryTrainer()
    for reading in fleet.readings(3000):
        trainer.observe(reading)
    zdict = trainer.train()
    assert zdict is not None
    print(f"dictionary {len(zdict.data)} bytes from {len(trainer.families())} topic families")
    print("ratio = payload bytes / compressed bytes; sealed = payloads + receive metadata")
    for size in batch_sizes:
        sums = dict.fromkeys(
            ("payload", "gzip", "zstd", "v1", "v2", "v2_dict", "v2_payload", "jsonl", "gz_jsonl"),
            0,
        )
        encode_s = decode_s = 0.0
        for _ in range(repeat):
            readings = fleet.readings(size)
            joined = b"\n".join(r.payload for r in readings)
            start = time.perf_counter()
            plain = codec.encode(readings, codec.CODEC_V2)
            encode_s += time.perf_counter() - start
            start = time.perf_counter()
            codec.decode(plain, codec.CODEC_V2)
            decode_s += time.perf_counter() - start
            payload_section = cbor2.dumps(cbor2.loads(plain)["payload"], canonical=True)
            jsonl = "\n".join(r.restore_line(0) for r in readings).encode()
            sums["payload"] += sum(len(r.payload) for r in readings)
            sums["gzip"] += len(gzip.compress(joined, 6, mtime=0))
            sums["zstd"] += len(compress(joined, level=level))
            sums["v1"] += len(compress(codec.encode(readings, codec.CODEC_V1), level=level))
            sums["v2"] += len(compress(plain, level=level))
            sums["v2_dict"] += len(compress(plain, level=level, dictionary=zdict))
            sums["v2_payload"] += len(compress(payload_section, level=level))
            sums["jsonl"] += len(jsonl)
            sums["gz_jsonl"] += len(gzip.compress(jsonl, 6, mtime=0))
        r = {k: sums["payload"] / v for k, v in sums.items() if k != "payload"}
        print(
            f"ratio {size:5d} readings: gzip-6 {r['gzip']:5.2f}x  zstd-{level} {r['zstd']:5.2f}x  "
            f"| sealed v1 {r['v1']:5.2f}x  v2 {r['v2']:5.2f}x  v2+dict {r['v2_dict']:5.2f}x "
            f"-> v2 = {r['v2'] / r['gzip']:.2f}x gzip, {r['v2'] / r['zstd']:.2f}x zstd "
            f"({sums['v2'] / size / repeat:.2f} B/reading, gzip {sums['gzip'] / size / repeat:.2f})"
        )
        print(
            f"      {size:5d} readings: v2 payload columns alone {r['v2_payload']:5.2f}x "
            f"(= {r['v2_payload'] / r['gzip']:.2f}x gzip); vs restore JSON lines: gzip-6 "
            f"{sums['jsonl'] / sums['gz_jsonl']:5.2f}x, sealed v2 "
            f"{sums['jsonl'] / sums['v2']:5.2f}x -> {sums['gz_jsonl'] / sums['v2']:.2f}x gzip; "
            f"v2 encode {encode_s / repeat * 1000:.0f} ms, decode {decode_s / repeat * 1000:.0f} ms"
        )


def defaults_ratio(repeat: int) -> None:
    """What the daemon does with a default config: codec, zstd level and receive-time
    resolution from ``[batch]`` defaults, 10,000-reading batches (``max_readings``)."""
    from gateway.config import config_from_string
    from gateway.seal.worker import at_resolution

    batch = config_from_string("").batch
    fleet = SensorFleet(seed=2)
    payload = gz = out = 0
    started = time.perf_counter()
    for _ in range(repeat):
        readings = at_resolution(fleet.readings(batch.max_readings), batch.time_resolution_ns)
        payload += sum(len(r.payload) for r in readings)
        gz += len(gzip.compress(b"\n".join(r.payload for r in readings), 6, mtime=0))
        out += len(compress(codec.encode(readings, batch.codec), level=batch.zstd_level))
    per_batch = (time.perf_counter() - started) / repeat
    print(f"defaults ({batch.codec}, zstd-{batch.zstd_level}, receive times at "
          f"{batch.time_resolution_ns} ns, {batch.max_readings} readings): ratio "
          f"{payload / out:5.2f}x = {(payload / out) / (payload / gz):.2f}x gzip-6 "
          f"({out / batch.max_readings / repeat:.2f} B/reading incl. metadata; "
          f"{per_batch:.2f} s per batch incl. gzip)")  # fmt: skip


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
    ratios((200, 1000, 10_000), 9, 2 if quick else 5)
    defaults_ratio(2 if quick else 5)
    print("== primitives")
    signatures(0.3 if quick else 1.0)
    zfec_and_hashes(4 * MB if quick else 16 * MB, 2 if quick else 3)


if __name__ == "__main__":
    main()
