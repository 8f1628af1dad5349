"""``depin-gateway dataset export``: the readings of a state directory as a verifiable dataset.

Two passes over the readings (restore's read-only readers): the first infers each source's
columns and fixes the last spool sequence number, the second writes the Parquet files, from the
readings the first pass kept in memory (up to ``CACHE_BYTES``) or else by reading them again up
to that sequence number, so a daemon appending meanwhile changes nothing (later readings are
left out). Everything is written into ``OUT.partial``, synced, then renamed to ``OUT``.

Layout of ``OUT``::

    data/<source>/<YYYY-MM-DD>/part-NNNNN.parquet   rows by source and UTC day, size-capped
    croissant.json      Croissant 1.1 metadata       README.md   Hugging Face dataset card
    provenance.json     signed map of files -> batches, keys, ledger head
    headers.car         every batch header (CAR v1, DAG-CBOR), for the verifier
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from gateway.config import Config
from gateway.dataset import provenance
from gateway.dataset.croissant import croissant, dataset_card
from gateway.dataset.parquet import FileWritten, Writers, file_sha256
from gateway.dataset.progress import Progress
from gateway.dataset.rows import Item, SchemaBuilder, SourceSchema
from gateway.dataset.source import Ledger, items, read_ledger
from gateway.errors import ConfigError, GatewayError, KeyMaterialError
from gateway.piece.car import Block, write_car
from gateway.piece.dagcbor import cid_for_dag_cbor

__all__ = ["ExportOptions", "ExportSummary", "export_dataset"]


@dataclass(frozen=True, slots=True)
class ExportOptions:
    out: Path
    owner_key: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    sources: frozenset[str] | None = None
    max_file_size: int = 128 * 1024 * 1024
    license: str = "CC-BY-4.0"
    creator: str | None = None  # default: the gateway id
    name: str | None = None
    url: str | None = None
    created_at: datetime | None = None  # default: now (injected by tests and reproducible builds)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    out: Path
    rows: int
    files: int
    batches: int
    partial_batches: int
    unsealed: int


def _check_out(out: Path, state_dir: Path) -> Path:
    if out.resolve().is_relative_to(state_dir.resolve()):
        raise ConfigError(
            "--out",
            f"{out} is inside the state directory",
            "readers never write there: pass a directory elsewhere",
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError("--out", f"{out} exists and is not empty", "pass a new directory")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted export of ours: never in the state dir
    partial.mkdir(parents=True)
    return partial


def _wanted(options: ExportOptions) -> Callable[[Item], bool]:
    def wanted(item: Item) -> bool:
        r = item.reading
        if options.sources is not None and r.source not in options.sources:
            return False
        if options.since_ns is not None and r.time.wall_ns < options.since_ns:
            return False
        return options.until_ns is None or r.time.wall_ns < options.until_ns

    return wanted


@dataclass(frozen=True, slots=True)
class _Pass:
    """What the first pass learnt: the schemas, the row count, the newest spool seq, and the
    wanted items themselves while they fit in ``CACHE_BYTES`` (else the second pass re-reads)."""

    schemas: dict[str, SourceSchema]
    count: int
    cap: int
    cached: list[Item] | None


CACHE_BYTES = 256 * 1024 * 1024  # opening a batch twice costs as much as the rest of the export


def _first_pass(config: Config, ledger: Ledger, options: ExportOptions) -> _Pass:
    builder = SchemaBuilder(rule.filter for rule in config.mqtt.topics)
    wanted, count, cap = _wanted(options), 0, -1
    cached: list[Item] | None = []
    held = 0
    # The sealed count is known up front; spool readings may push the line past 100 %.
    progress = Progress(sum(h.header.count for h in ledger.headers), "reading  ")
    for item in items(config, ledger, options.owner_key, None):
        progress.step()
        cap = max(cap, item.reading.seq)
        if not wanted(item):
            continue
        builder.add(item.reading)
        count += 1
        if cached is not None:
            cached.append(item)
            held += 200 + len(item.reading.payload) + len(item.reading.decoded or "")
            cached = cached if held <= CACHE_BYTES else None
    progress.finish()
    if not count:
        raise GatewayError("nothing to export: no reading matches --from/--to/--sources")
    return _Pass(builder.build(), count, cap, cached)


def _second_pass(
    config: Config, ledger: Ledger, options: ExportOptions, writers: Writers, first: _Pass
) -> dict[int, int]:
    """Write the rows; returns the number of rows included from each batch."""
    included: dict[int, int] = {}
    progress = Progress(first.count, "exporting")
    wanted = _wanted(options)
    again = first.cached is None
    source = items(config, ledger, options.owner_key, first.cap) if again else first.cached
    for item in source or ():
        if again and not wanted(item):
            continue
        writers.add(item)
        if item.batch is not None:
            included[item.batch.seq] = included.get(item.batch.seq, 0) + 1
        progress.step()
    progress.finish()
    return included


def _write_headers_car(partial: Path, ledger: Ledger) -> dict[str, Any]:
    cids = [cid_for_dag_cbor(block) for block in ledger.blocks]
    path = partial / "headers.car"
    with open(path, "wb") as stream:
        write_car(
            stream, [cids[-1]], [Block(c, b) for c, b in zip(cids, ledger.blocks, strict=True)]
        )
    return {"path": "headers.car", "sha256": file_sha256(path), "root": str(cids[-1])}


def _batches(ledger: Ledger, included: dict[int, int]) -> list[dict[str, Any]]:
    out = []
    for seq in sorted(included):
        header = ledger.headers[seq].header
        out.append(
            {
                "seq": seq,
                "cid": ledger.cids[seq],
                "count": header.count,
                "included": included[seq],
                "complete": included[seq] == header.count,
                "codec": header.codec,
                "plaintext_sha256": header.plaintext_sha256.hex(),
            }
        )
    return out


def _body(
    config: Config,
    ledger: Ledger,
    options: ExportOptions,
    car: dict[str, Any] | None,
    files: list[FileWritten],
    included: dict[int, int],
) -> dict[str, Any]:
    def iso(ns: int | None) -> str | None:
        return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC).isoformat()

    last = ledger.headers[-1] if ledger.headers else None
    recorded = ledger.recorded_head
    return {
        "version": 1,
        "gateway_id": config.gateway.id,
        "created_at": (options.created_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "selection": {
            "from": iso(options.since_ns),
            "to": iso(options.until_ns),
            "sources": sorted(options.sources) if options.sources else None,
        },
        "ledger": {
            "head": None if last is None else {"seq": last.seq, "cid": ledger.cids[-1]},
            "recorded_head": None if recorded is None else {"seq": recorded[0], "cid": recorded[1]},
        },
        "keys": provenance.key_chain(ledger.headers, ledger.genesis),
        "headers_car": car,
        "batches": _batches(ledger, included),
        "files": [provenance.file_entry(f, ledger.cids) for f in files],
        "unsealed_rows": sum(1 for f in files for b, _, _ in f.items if b is None),
    }


def _signing_key(ledger: Ledger, body: dict[str, Any]) -> SigningKey:
    """The newest key of the chain: identity.key, or identity.next.key in the moment after a
    batch certified it and before the daemon swapped the files (gateway.identity)."""
    newest = body["keys"][-1]["key"]
    for key in ledger.signing_keys:
        if provenance.format_gateway_public(key.verify_key) == newest:
            return key
    raise KeyMaterialError("identity.key", f"no identity key file holds the newest key {newest}")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _sync_tree(root: Path) -> None:
    for path in [*sorted(root.rglob("*"), reverse=True), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def export_dataset(config: Config, options: ExportOptions) -> ExportSummary:
    ledger = read_ledger(config)
    partial = _check_out(options.out, config.state_dir)
    try:
        body, files = _export_into(partial, config, ledger, options)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # ours, half written: never a dataset
        raise
    _sync_tree(partial)
    partial.rename(options.out)
    partial_batches = sum(1 for b in body["batches"] if not b["complete"])
    return ExportSummary(
        options.out,
        sum(f["rows"] for f in body["files"]),
        files,
        len(body["batches"]),
        partial_batches,
        body["unsealed_rows"],
    )


def _export_into(
    partial: Path, config: Config, ledger: Ledger, options: ExportOptions
) -> tuple[dict[str, Any], int]:
    first = _first_pass(config, ledger, options)
    writers = Writers(partial, first.schemas, options.max_file_size)
    included = _second_pass(config, ledger, options, writers, first)
    files = writers.close()
    car = _write_headers_car(partial, ledger) if ledger.blocks else None
    body = _body(config, ledger, options, car, files, included)
    _write_json(partial / "provenance.json", provenance.sign(body, _signing_key(ledger, body)))
    _write_metadata(partial, config, options, first.schemas, files, body)
    return body, len(files)


def _write_metadata(
    partial: Path,
    config: Config,
    options: ExportOptions,
    schemas: dict[str, SourceSchema],
    files: Iterable[FileWritten],
    body: dict[str, Any],
) -> None:
    files = list(files)
    name = options.name or f"{config.gateway.id} sensor readings"
    meta = {
        "name": name,
        "license": options.license,
        "license_id": options.license.lower(),
        "creator": options.creator or config.gateway.id,
        "description": (
            f"Sensor readings from DePIN gateway {config.gateway.id}, exported from "
            "its signed, hash-chained batches; provenance.json and headers.car let "
            "anyone check every row against the gateway's key."
        ),
        "date_published": body["created_at"],
        "url": options.url or "",
    }
    cids = [b["cid"] for b in body["batches"]]
    _write_json(partial / "croissant.json", croissant(meta, schemas, files, cids))
    summary = {
        "rows": sum(len(f.items) for f in files),
        "batches": len(cids),
        "unsealed": body["unsealed_rows"],
    }
    (partial / "README.md").write_text(dataset_card(meta, schemas, summary), encoding="utf-8")
