"""Dataset export rate and size: Parquet bytes per reading against the sealed batch and gzip.

    .venv/bin/python bench/bench_dataset.py [--readings 50000] [--batch 10000]

Seals ``--readings`` synthetic readings (``SensorFleet(seed=2)``: 12 MQTT devices with JSON
payloads plus a PMS5003 serial port, the fleet bench_seal uses) into a real vault in a temporary
state directory, in batches of ``--batch`` (the default ``[batch] max_readings``), then times
``export_dataset`` (wall and CPU time; both passes, each batch decrypted and decoded once: the
first pass keeps the readings for the second) and prints bytes per reading for: the Parquet
files, the sealed batches (k data fragments = ciphertext; all k + m fragments as stored), and
gzip -6 of the restore JSON lines.
"""

from __future__ import annotations

import argparse
import gzip
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from benchutil import cpu_model

from gateway.config import config_from_string
from gateway.dataset.export import ExportOptions, export_dataset
from gateway.keys import create_identity, create_owner_key, format_owner_public
from gateway.seal import Vault, seal_batch
from gateway.seal.synthetic import SensorFleet


def _state(root: Path, readings: int, batch: int) -> tuple[Path, int, int, bytes]:
    """A state dir with sealed batches; returns (config path, ciphertext B, stored B, jsonl)."""
    state = root / "state"
    state.mkdir()
    identity = create_identity(state / "identity.key")
    owner = create_owner_key(state / "owner.key")
    (state / "spool").mkdir()
    vault = Vault(state)
    fleet = SensorFleet(seed=2)
    prev, cipher, stored, lines = None, 0, 0, []
    for seq in range(readings // batch):
        work = fleet.readings(batch)
        sealed = seal_batch(
            work, identity=identity, owners=[owner.public_key], seq=seq, prev=prev, zstd_level=19
        )
        vault.put(sealed)
        prev = sealed.header_cid
        cipher += sealed.signed.header.erasure.length
        stored += sum(len(f) for f in sealed.fragments)
        lines += [r.restore_line(seq) for r in work]
    config = root / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "bench"\nstate_dir = "{state}"\n'
        f'[owner]\npublic_keys = ["{format_owner_public(owner.public_key)}"]\n'
    )
    return config, cipher, stored, ("\n".join(lines) + "\n").encode()


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine  {cpu_model()}, {platform.machine()}, python {sys.version.split()[0]}")
    print(f"libs     pyarrow {version('pyarrow')}, zstandard {version('zstandard')}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path, cipher, stored, jsonl = _state(root, args.readings, args.batch)
        config = config_from_string(config_path.read_text(), config_path)
        start, cpu = time.perf_counter(), time.process_time()
        summary = export_dataset(config, ExportOptions(out=root / "ds"))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        parquet = sum(p.stat().st_size for p in (root / "ds" / "data").rglob("*.parquet"))
        meta = sum(p.stat().st_size for p in (root / "ds").iterdir() if p.is_file())
    n = summary.rows
    gz = len(gzip.compress(jsonl, compresslevel=6))
    rate = n / seconds
    print(f"export   {n} readings, {summary.files} files, {seconds:.2f} s: {rate:,.0f} readings/s")
    # On a shared machine the CPU time is the steadier figure: it ignores time spent waiting.
    print(f"         {cpu:.2f} s CPU: {n / cpu:,.0f} readings per CPU second; load {_load()}")
    print(f"bytes/reading  parquet (zstd) {parquet / n:6.1f}   + metadata files {meta / n:5.2f}")
    print(f"               sealed ciphertext {cipher / n:6.1f}   k+m fragments {stored / n:6.1f}")
    print(
        f"               restore JSON lines {len(jsonl) / n:6.1f}   gzip -6 of them {gz / n:6.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
