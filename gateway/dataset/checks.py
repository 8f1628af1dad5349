"""The row checks of ``dataset verify``: every row against the signed batch it names.

Pure over values (no files). The rule a third party applies, byte for byte:

1. Gather the rows whose ``batch_seq`` is B, from every file, and order them by
   ``batch_index``. Each row is the reading ``Reading(seq, source, topic,
   ReceiveTime(wall_ns, mono_ns, boot_id, clock_synced), payload, key, decoded)``.
2. A batch whose rows are all in the dataset (``batch_index`` exactly 0..count-1) must
   re-encode, with the header's ``codec`` (``gateway.seal.codec.encode``), to bytes whose
   sha256 and length are the header's ``plaintext`` fields: the header signs them, so every
   column the codec encodes is checked, not only the payload.
3. A batch cut by ``--from/--to/--sources`` cannot be re-encoded: its rows are checked to sit
   inside the header's per-source sequence ranges and time range, in order, with no index
   repeated, and their number must be what the signed provenance says was included.
4. In every file, rows run in strictly increasing ``seq`` (the gateway's arrival order).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.reading import Reading
from gateway.seal import SignedHeader
from gateway.seal.codec import CodecError, encode

__all__ = ["Problem", "Row", "check_batch", "check_order", "check_segments"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where (a file or document), which rows (first, last; 0-based), what."""

    where: str
    reason: str
    rows: tuple[int, int] | None = None

    def __str__(self) -> str:
        if self.rows is None:
            return f"{self.where}: {self.reason}"
        first, last = self.rows
        span = f"row {first}" if first == last else f"rows {first}-{last}"
        return f"{self.where} {span}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Row:
    file: str
    row: int
    reading: Reading
    batch_seq: int | None
    batch_index: int | None
    batch_cid: str | None


def _spans(rows: Sequence[Row]) -> list[tuple[str, int, int]]:
    """Contiguous (file, first row, last row) runs of ``rows``."""
    out: list[tuple[str, int, int]] = []
    for r in rows:
        if out and out[-1][0] == r.file and out[-1][2] == r.row - 1:
            out[-1] = (r.file, out[-1][1], r.row)
        else:
            out.append((r.file, r.row, r.row))
    return out


def _each_span(rows: Sequence[Row], reason: str) -> list[Problem]:
    return [Problem(f, reason, (a, b)) for f, a, b in _spans(rows)]


def check_order(file: str, rows: Sequence[Row]) -> list[Problem]:
    problems = []
    for before, after in itertools.pairwise(rows):
        if after.reading.seq <= before.reading.seq:
            problems.append(
                Problem(
                    file,
                    f"out of order: seq {after.reading.seq} after {before.reading.seq}",
                    (before.row, after.row),
                )
            )
    return problems


def check_segments(file: str, entry: Mapping[str, Any], rows: Sequence[Row]) -> list[Problem]:
    """The file's rows against its signed provenance entry (row count, batch, seq ranges)."""
    if entry.get("rows") != len(rows):
        return [
            Problem(
                file,
                f"{len(rows)} rows, provenance says {entry.get('rows')}",
                (0, max(len(rows) - 1, 0)),
            )
        ]
    problems = []
    for seg in entry.get("segments", []):
        first, last = seg["rows"]
        part = rows[first : last + 1]
        if not part:
            problems.append(
                Problem(file, "provenance names rows the file does not have", (first, last))
            )
            continue
        seqs = [r.reading.seq for r in part]
        cids = {r.batch_cid for r in part}
        if (
            any(r.batch_seq != seg["batch"] for r in part)
            or [seqs[0], seqs[-1]] != seg["seq"]
            or cids != {seg.get("batch_cid")}
        ):
            problems.append(
                Problem(
                    file,
                    f"rows differ from provenance (batch {seg['batch']}, "
                    f"seq {seg['seq'][0]}-{seg['seq'][1]})",
                    (first, last),
                )
            )
    return problems


def _missing(rows: Sequence[Row], count: int, seq: int) -> list[Problem]:
    by_index = {r.batch_index: r for r in rows}
    problems = []
    for index in range(count):
        if index in by_index:
            continue
        near = by_index.get(index - 1) or by_index.get(index + 1)
        where = near.file if near else "dataset"
        at = (near.row, near.row) if near else None
        problems.append(
            Problem(where, f"batch {seq} reading {index} of {count} is missing (deleted row?)", at)
        )
    return problems


def _in_header(rows: Iterable[Row], signed: SignedHeader) -> list[Problem]:
    header, problems = signed.header, []
    for r in rows:
        span = header.sources.get(r.reading.source)
        if span is None or not span[0] <= r.reading.seq <= span[1]:
            problems.append(
                Problem(
                    r.file,
                    f"seq {r.reading.seq} of {r.reading.source} is not in "
                    f"batch {header.seq}'s signed range {span}",
                    (r.row, r.row),
                )
            )
        elif not header.time_first_ns <= r.reading.time.wall_ns <= header.time_last_ns:
            problems.append(
                Problem(
                    r.file,
                    f"receive time outside batch {header.seq}'s signed time range",
                    (r.row, r.row),
                )
            )
        if r.batch_cid != str(signed.cid()):
            problems.append(
                Problem(r.file, f"batch_cid is not batch {header.seq}'s header CID", (r.row, r.row))
            )
    return problems


def _repeats(rows: Sequence[Row]) -> list[Problem]:
    seen: dict[int | None, Row] = {}
    problems = []
    for r in rows:
        if r.batch_index in seen:
            problems.append(
                Problem(
                    r.file,
                    f"batch {r.batch_seq} reading {r.batch_index} "
                    f"appears twice (also {seen[r.batch_index].file} row "
                    f"{seen[r.batch_index].row})",
                    (r.row, r.row),
                )
            )
        seen[r.batch_index] = r
    return problems


def check_batch(
    signed: SignedHeader, entry: Mapping[str, Any], rows: Sequence[Row]
) -> tuple[list[Problem], bool]:
    """Problems of one batch's rows; True when the plaintext hash was re-computed and matched."""
    header = signed.header
    problems = _in_header(rows, signed) + _repeats(rows)
    if entry.get("count") != header.count or entry.get("cid") != str(signed.cid()):
        problems.append(
            Problem(
                "provenance.json", f"batch {header.seq}: cid or count differ from the signed header"
            )
        )
    if len(rows) != entry.get("included"):
        problems += _each_span(
            rows,
            f"batch {header.seq}: {len(rows)} rows, provenance "
            f"says {entry.get('included')} were exported",
        )
    if not entry.get("complete"):
        return problems, False
    problems += _missing(rows, header.count, header.seq)
    if problems:
        return problems, False
    readings = [r.reading for r in sorted(rows, key=lambda r: r.batch_index or 0)]
    try:
        plaintext = encode(readings, header.codec)
    except (ValueError, CodecError) as exc:
        return _each_span(rows, f"batch {header.seq}: cannot re-encode: {exc}"), False
    if hashlib.sha256(plaintext).digest() != header.plaintext_sha256 or len(plaintext) != (
        header.plaintext_size
    ):
        return _each_span(
            rows,
            f"batch {header.seq}: rows do not re-encode to the signed "
            "plaintext hash (a value was changed)",
        ), False
    return [], True
