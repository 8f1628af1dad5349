"""Rows -> Parquet files (pyarrow, zstd), split by source and UTC day under a size cap.

Fixed columns (every file, in this order), then the source's typed value columns::

    source, topic, received_at (timestamp[us, UTC]), wall_ns, mono_ns, boot_id, clock_synced,
    seq, key, duplicate, payload (binary, exactly as received), decoded (driver view, text),
    batch_seq, batch_index, batch_cid

``wall_ns``, ``key`` and ``decoded`` are there because the batch's plaintext hash covers them:
with them a verifier rebuilds the codec's bytes from the rows alone (see gateway.dataset.verify).
Importing this module imports pyarrow: only the dataset commands do.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gateway.dataset.flatten import cell
from gateway.dataset.rows import Item, SourceSchema, day_of, value_leaves

__all__ = ["FORMAT", "FileWritten", "Writers", "arrow_schema", "file_sha256", "slug"]

FORMAT = "depin-dataset-v1"
_KIND_TYPES = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64()}
_FIXED = [
    pa.field("source", pa.string(), nullable=False),
    pa.field("topic", pa.string(), nullable=False),
    pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("wall_ns", pa.int64(), nullable=False),
    pa.field("mono_ns", pa.int64(), nullable=False),
    pa.field("boot_id", pa.string(), nullable=False),
    pa.field("clock_synced", pa.bool_(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("key", pa.string()),
    pa.field("duplicate", pa.bool_(), nullable=False),
    pa.field("payload", pa.binary(), nullable=False),
    pa.field("decoded", pa.string()),
    pa.field("batch_seq", pa.int64()),
    pa.field("batch_index", pa.int64()),
    pa.field("batch_cid", pa.string()),
]
FIXED_NAMES = tuple(f.name for f in _FIXED)
# Counters and clocks step by small amounts from row to row: delta encoding stores the steps
# (bench_dataset fleet: wall_ns 6.6 -> 4.0 B/reading, seq and batch_index 2.6 -> ~0).
_DELTA = dict.fromkeys(
    ("received_at", "wall_ns", "mono_ns", "seq", "batch_seq", "batch_index"), "DELTA_BINARY_PACKED"
)


def slug(source: str) -> str:
    """A source as a path segment and a dataset config name: "serial:gps" -> "serial-gps"."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in source)


def arrow_schema(schema: SourceSchema) -> pa.Schema:
    fields = list(_FIXED)
    for column in schema.columns:
        meta = {"kind": column.kind, "topics": json.dumps(list(column.topics))}
        if column.unit:
            meta["unit"] = column.unit
        fields.append(
            pa.field(column.name, _KIND_TYPES.get(column.kind, pa.string()), metadata=meta)
        )
    units = {c.name: c.unit for c in schema.columns if c.unit}
    meta = {
        "depin.format": FORMAT,
        "depin.source": schema.source,
        "depin.units": json.dumps(units, sort_keys=True),
        "depin.topics": json.dumps(list(schema.topics)),
    }
    return pa.schema(fields, metadata=meta)


def _fixed_values(item: Item) -> list[Any]:
    r, batch = item.reading, item.batch
    return [
        r.source,
        r.topic,
        r.time.wall_ns // 1000,
        r.time.wall_ns,
        r.time.mono_ns,
        r.time.boot_id,
        r.time.clock_synced,
        r.seq,
        r.key,
        item.duplicate,
        r.payload,
        r.decoded,
        None if batch is None else batch.seq,
        item.index,
        None if batch is None else batch.cid,
    ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class FileWritten:
    """One closed Parquet file and which items (in file row order) it holds."""

    path: str  # relative to the dataset directory
    source: str
    day: str
    size: int
    sha256: str
    items: tuple[tuple[int | None, int | None, int], ...]  # (batch seq, batch index, spool seq)


@dataclass
class _Open:
    path: Path
    sink: pa.NativeFile
    writer: pq.ParquetWriter
    buffer: list[Item] = field(default_factory=list)
    written: list[tuple[int | None, int | None, int]] = field(default_factory=list)


class Writers:
    """One open writer per (source, day); a file is closed once it reaches ``max_size`` bytes.

    Row groups are sized from the bytes per row seen so far (an eighth of the cap), so a file
    overshoots the cap by at most about one row group, plus its footer (column statistics per
    row group: a few KiB, which only matters for caps far below the 128 MiB default).
    """

    def __init__(self, root: Path, schemas: dict[str, SourceSchema], max_size: int) -> None:
        self.root, self.schemas, self.max_size = root, schemas, max_size
        self.arrow = {s: arrow_schema(schema) for s, schema in schemas.items()}
        self._open: dict[tuple[str, str], _Open] = {}
        self._parts: dict[tuple[str, str], int] = {}
        self._row_bytes = 200.0
        self.done: list[FileWritten] = []

    def _group_rows(self) -> int:
        return max(16, min(65536, int(self.max_size / 8 / self._row_bytes)))

    def add(self, item: Item) -> None:
        key = (item.reading.source, day_of(item.reading))
        handle = self._open.get(key) or self._start(key)
        handle.buffer.append(item)
        if len(handle.buffer) >= self._group_rows():
            self._flush(key, handle)

    def _start(self, key: tuple[str, str]) -> _Open:
        part = self._parts.get(key, 0)
        self._parts[key] = part + 1
        path = self.root / "data" / slug(key[0]) / key[1] / f"part-{part:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Our own sink: its tell() counts every byte handed over, where stat() lags behind.
        sink = pa.OSFile(str(path), "wb")
        schema = self.arrow[key[0]]
        writer = pq.ParquetWriter(
            sink,
            schema,
            compression="zstd",
            compression_level=9,
            use_dictionary=[n for n in schema.names if n not in _DELTA],
            column_encoding=_DELTA,
        )
        self._open[key] = handle = _Open(path, sink, writer)
        return handle

    def _flush(self, key: tuple[str, str], handle: _Open) -> None:
        if not handle.buffer:
            return
        table = self._table(key[0], handle.buffer)
        before = handle.sink.tell()
        handle.writer.write_table(table, row_group_size=len(handle.buffer))
        grown = max(handle.sink.tell() - before, 1)
        self._row_bytes = max(grown / len(handle.buffer), 1.0)
        handle.written += [
            (i.batch.seq if i.batch else None, i.index, i.reading.seq) for i in handle.buffer
        ]
        handle.buffer = []
        if handle.sink.tell() >= self.max_size:
            self._close(key)

    def _table(self, source: str, batch: list[Item]) -> pa.Table:
        schema = self.schemas[source]
        kinds = schema.kinds()
        columns: list[list[Any]] = [[] for _ in range(len(FIXED_NAMES) + len(kinds))]
        names = list(kinds)
        for item in batch:
            for i, value in enumerate(_fixed_values(item)):
                columns[i].append(value)
            leaves, _ = value_leaves(item.reading)
            for j, name in enumerate(names):
                columns[len(FIXED_NAMES) + j].append(cell(kinds[name], leaves.get(name)))
        return pa.Table.from_arrays(
            [
                pa.array(col, type=f.type)
                for col, f in zip(columns, self.arrow[source], strict=True)
            ],
            schema=self.arrow[source],
        )

    def _close(self, key: tuple[str, str]) -> None:
        handle = self._open.pop(key)
        handle.writer.close()
        handle.sink.close()
        self._sync(handle.path)
        rel = handle.path.relative_to(self.root).as_posix()
        self.done.append(
            FileWritten(
                rel,
                key[0],
                key[1],
                handle.path.stat().st_size,
                file_sha256(handle.path),
                tuple(handle.written),
            )
        )

    @staticmethod
    def _sync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> list[FileWritten]:
        for key, handle in list(self._open.items()):
            self._flush(key, handle)
            if key in self._open:
                self._close(key)
        return sorted(self.done, key=lambda f: f.path)

    def __iter__(self) -> Iterator[FileWritten]:
        return iter(self.done)
