"""commP throughput against plain SHA-256 on the same random buffer.

    .venv/bin/python bench/bench_commp.py [--mib 64] [--pure-mib 4] [--repeat 5]

Prints the machine, then MB/s (10**6 payload bytes per second, best of --repeat interleaved
rounds) for hashlib.sha256, commP with the C extension, and commP in pure Python (on the first
--pure-mib of the buffer), and the ratio commP/sha256. commP hashes about twice the bytes
SHA-256 does, and every tree node is a 64-byte SHA-256 of two compressions, so the ideal ratio
is about 25%.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import platform
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchutil import cpu_flags, cpu_model

from gateway.piece import _pure, commp, merkle

# The package exports the function commp, which hides the submodule of the same name.
commp_module: Any = importlib.import_module("gateway.piece.commp")


def best_mbps(functions: list[Callable[[bytes], object]], data: bytes, repeat: int) -> list[float]:
    """Best MB/s of each function; rounds interleave them so load from other processes hits all."""
    best = [float("inf")] * len(functions)
    for _ in range(repeat):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function(data)
            best[index] = min(best[index], time.perf_counter() - start)
    return [len(data) / seconds / 1e6 for seconds in best]


def sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@contextmanager
def pure_backend() -> Iterator[None]:
    """Run CommP on the pure-Python reference (what DEPIN_COMMP_PURE=1 selects at import)."""
    saved = commp_module.subtree_root
    commp_module.subtree_root = _pure.subtree_root
    try:
        yield
    finally:
        commp_module.subtree_root = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="buffer size in MiB (default 64)")
    parser.add_argument("--pure-mib", type=int, default=4, help="slice for pure Python (4)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, best kept")
    args = parser.parse_args()

    print(f"platform   {platform.platform()} ({platform.machine()})")
    accel = sorted(cpu_flags() & {"sha_ni", "sha2", "sha256"})
    print(
        f"cpu        {cpu_model()} (SHA acceleration flags: {', '.join(accel) or 'none'}), "
        f"{os.cpu_count()} logical CPUs"
    )
    print(f"python     {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"openssl    {ssl.OPENSSL_VERSION}")
    print(f"backend    {merkle.BACKEND} (selected at import)")

    data = os.urandom(args.mib << 20)
    print(f"\nbuffer     {args.mib} MiB random; MB/s of payload, best of {args.repeat}")
    if merkle.BACKEND == "native":
        sha, native = best_mbps([sha256_digest, commp], data, args.repeat)
        print(f"sha256     {sha:9.1f} MB/s  (hashlib)")
        print(f"commP C    {native:9.1f} MB/s  ratio commP/sha256 = {native / sha:.1%}")
    else:
        (sha,) = best_mbps([sha256_digest], data, args.repeat)
        print(f"sha256     {sha:9.1f} MB/s  (hashlib)")
        print("commP C    (extension not built or DEPIN_COMMP_PURE set)")
    sliced = data[: args.pure_mib << 20]
    with pure_backend():
        (pure,) = best_mbps([commp], sliced, 1)
    print(
        f"commP py   {pure:9.1f} MB/s  ratio commP/sha256 = {pure / sha:.1%} ({args.pure_mib} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
