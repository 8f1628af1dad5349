"""``depin-gateway dataset verify DIR``: check a dataset with only the gateway's public key.

1. ``headers.car``: every header parses, is signed by the key in force (the genesis key, then
   each key a header certifies), links its predecessor, and the newest is the provenance's head.
2. ``provenance.json``: its signature verifies under a key of that chain; its key list is the
   chain's.
3. Every file: sha256 and size as signed (and as croissant.json says), readable, its rows as
   the signed segments say, rows in arrival order.
4. Every batch's rows against the signed header (gateway.dataset.checks: plaintext hash for
   whole batches, ranges for cut ones).

Without ``--gateway-key`` the genesis key is taken from provenance.json itself: trust on first
use, and said so. Findings name the file and row range; nothing stops at the first one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey

from gateway.dataset import provenance
from gateway.dataset.checks import Problem, Row, check_batch, check_order, check_segments
from gateway.dataset.parquet import FIXED_NAMES, file_sha256
from gateway.dataset.views import check_views
from gateway.errors import GatewayError, InputError, IntegrityError, KeyMaterialError
from gateway.keys import parse_gateway_public
from gateway.piece.car import decode_car
from gateway.reading import Reading, ReceiveTime
from gateway.seal import SignedHeader, verify_chain

__all__ = ["_Findings", "verify_dataset"]


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """What ``verify_dataset`` checked and found (``problems`` empty when all is well)."""

    problems: tuple[Problem, ...]
    notes: tuple[str, ...]
    files: int
    rows: int
    whole_batches: int
    cut_batches: int
    unsealed: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "OK" if self.ok else f"FAILED: {len(self.problems)} problem(s)"
        return (
            f"{verdict}: {self.files} files, {self.rows} rows; {self.whole_batches} whole "
            f"batches re-encoded to their signed plaintext hash, {self.cut_batches} cut "
            f"batches range-checked, {self.unsealed} unsealed rows (vouched for only by the "
            "provenance signature)"
        )


@dataclass
class _Findings:
    """The checks' running tally (frozen into a ``DatasetReport`` at the end)."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    whole_batches: int = 0
    cut_batches: int = 0
    unsealed: int = 0

    def freeze(self) -> DatasetReport:
        return DatasetReport(
            tuple(self.problems),
            tuple(self.notes),
            self.files,
            self.rows,
            self.whole_batches,
            self.cut_batches,
            self.unsealed,
        )


def _load(path: Path, report: _Findings) -> tuple[dict[str, Any], VerifyKey | None]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GatewayError(f"{path}: unreadable provenance: {exc}") from None
    try:
        body, signer = provenance.unsign(document)
        return body, signer
    except IntegrityError as exc:
        report.problems.append(Problem("provenance.json", f"{exc.field}: {exc.reason}"))
        unsigned = document.get("body") if isinstance(document, dict) else None
        if not isinstance(unsigned, dict):
            raise GatewayError(f"{path}: no provenance body to check against") from None
        return unsigned, None


def _anchor(body: Mapping[str, Any], pinned: str | None, report: _Findings) -> VerifyKey:
    listed = str(body["keys"][0]["key"])
    if pinned is None:
        report.notes.append(
            f"trust on first use: the genesis key {listed} is taken from "
            "provenance.json itself; pass --gateway-key to pin it"
        )
        return parse_gateway_public(listed)
    key = parse_gateway_public(pinned)
    if bytes(key) != bytes(parse_gateway_public(listed)):
        report.problems.append(
            Problem("provenance.json", f"genesis key {listed} is not the --gateway-key {pinned}")
        )
    return key


def _headers(
    root: Path, body: Mapping[str, Any], anchor: VerifyKey, report: _Findings
) -> dict[int, SignedHeader]:
    car = body.get("headers_car") or {}
    path = root / "headers.car"
    if not car and not path.exists():
        return {}  # an export of unsealed readings only: there is no header to check
    try:
        if file_sha256(path) != car.get("sha256"):
            report.problems.append(Problem("headers.car", "sha256 differs from provenance.json"))
        blocks = decode_car(path.read_bytes()).blocks
    except (OSError, InputError) as exc:
        report.problems.append(Problem("headers.car", f"unreadable: {exc}"))
        return {}
    headers: list[SignedHeader] = []
    unreadable: list[IntegrityError] = []
    for block in blocks:
        try:
            headers.append(SignedHeader.from_block(block.data))
        except IntegrityError as exc:
            unreadable.append(exc)
    head = (body.get("ledger") or {}).get("head") or {}
    chain = verify_chain(
        headers, gateway_key=anchor, expected_head=head.get("cid"), unreadable=unreadable
    )
    report.problems += [Problem("headers.car", str(p)) for p in chain.problems]
    if provenance.key_chain(headers, anchor) != body.get("keys"):
        report.problems.append(Problem("provenance.json", "key list is not the chain's keys"))
    return {h.seq: h for h in headers}


def _read_rows(root: Path, entry: Mapping[str, Any], report: _Findings) -> list[Row]:
    import pyarrow.parquet as pq

    name = str(entry["path"])
    path = root / name
    if not path.is_file():
        report.problems.append(Problem(name, "missing"))
        return []
    if file_sha256(path) != entry.get("sha256") or path.stat().st_size != entry.get("size"):
        report.problems.append(
            Problem(
                name,
                "sha256 differs from provenance.json (changed, replaced or swapped)",
                (0, int(entry["rows"]) - 1),
            )
        )
    try:
        arrow = pq.read_table(path)
        table = arrow.to_pydict()
        rows = [_row(name, i, table) for i in range(len(table["seq"]))]
        # A typed column without its kind could not be re-derived: treat it as unknown text,
        # which any real value then contradicts.
        kinds = {
            f.name: (f.metadata or {}).get(b"kind", b"unknown").decode()
            for f in arrow.schema
            if f.name not in FIXED_NAMES
        }
        report.problems += check_views(name, rows, table, kinds)
        return rows
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow errors subclass these
        report.problems.append(
            Problem(name, f"unreadable Parquet: {exc}", (0, int(entry["rows"]) - 1))
        )
        return []


def _row(name: str, i: int, t: Mapping[str, list[Any]]) -> Row:
    time = ReceiveTime(t["wall_ns"][i], t["mono_ns"][i], t["boot_id"][i], t["clock_synced"][i])
    reading = Reading(
        t["seq"][i],
        t["source"][i],
        t["topic"][i],
        time,
        t["payload"][i],
        t["key"][i],
        t["decoded"][i],
    )
    return Row(name, i, reading, t["batch_seq"][i], t["batch_index"][i], t["batch_cid"][i])


def _croissant(root: Path, body: Mapping[str, Any], report: _Findings) -> None:
    try:
        document = json.loads((root / "croissant.json").read_text(encoding="utf-8"))
        listed = {
            d["contentUrl"]: d["sha256"]
            for d in document["distribution"]
            if d.get("@type") == "cr:FileObject"
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.problems.append(Problem("croissant.json", f"unreadable: {exc}"))
        return
    for entry in body["files"]:
        if listed.get(entry["path"]) != entry["sha256"]:
            report.problems.append(
                Problem("croissant.json", f"sha256 of {entry['path']} is not the signed one")
            )


def _extra_files(root: Path, body: Mapping[str, Any], report: _Findings) -> None:
    signed = {e["path"] for e in body["files"]}
    for path in sorted((root / "data").rglob("*.parquet")):
        name = path.relative_to(root).as_posix()
        if name not in signed:
            report.problems.append(Problem(name, "not in provenance.json (added?)"))


def _batches(
    body: Mapping[str, Any],
    headers: Mapping[int, SignedHeader],
    rows: list[Row],
    report: _Findings,
) -> None:
    by_batch: dict[int, list[Row]] = {}
    for r in rows:
        if r.batch_seq is None:
            report.unsealed += 1
        else:
            by_batch.setdefault(r.batch_seq, []).append(r)
    entries = {int(e["seq"]): e for e in body["batches"]}
    for seq, mine in sorted(by_batch.items()):
        if seq not in entries or seq not in headers:
            report.problems += [
                Problem(r.file, f"names batch {seq}, which is not signed", (r.row, r.row))
                for r in mine[:1]
            ]
            continue
        problems, whole = check_batch(headers[seq], entries[seq], mine)
        report.problems += problems
        report.whole_batches += whole
        report.cut_batches += not entries[seq].get("complete")
    if report.unsealed != body.get("unsealed_rows"):
        report.problems.append(
            Problem(
                "dataset",
                f"{report.unsealed} unsealed rows, provenance says {body.get('unsealed_rows')}",
            )
        )


def verify_dataset(root: Path, gateway_key: str | None = None) -> DatasetReport:
    """Every check in the module docstring; raises ``GatewayError`` only when nothing can be
    checked (no provenance document, no usable key, a body that is not the v1 layout)."""
    report = _Findings()
    if not (root / "provenance.json").is_file():
        raise GatewayError(f"{root}: no provenance.json: not a dataset directory")
    body, signer = _load(root / "provenance.json", report)
    try:
        anchor = _anchor(body, gateway_key, report)
    except (KeyMaterialError, KeyError, IndexError, TypeError) as exc:
        raise GatewayError(f"no usable gateway key: {exc}") from None
    try:
        _check_all(root, body, anchor, signer, report)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise GatewayError(f"{root / 'provenance.json'}: malformed body: {exc!r}") from None
    return report.freeze()


def _signer(
    headers: Mapping[int, SignedHeader],
    anchor: VerifyKey,
    signer: VerifyKey | None,
    report: _Findings,
) -> None:
    """The provenance must be signed by the newest key of the chain the headers certify."""
    newest = provenance.key_chain(headers.values(), anchor)[-1]["key"]
    if signer is not None and provenance.format_gateway_public(signer) != newest:
        report.problems.append(
            Problem(
                "provenance.json",
                f"signed by "
                f"{provenance.format_gateway_public(signer)}, not by "
                f"this gateway's newest key {newest}",
            )
        )


def _check_all(
    root: Path,
    body: Mapping[str, Any],
    anchor: VerifyKey,
    signer: VerifyKey | None,
    report: _Findings,
) -> None:
    headers = _headers(root, body, anchor, report)
    _signer(headers, anchor, signer, report)
    _croissant(root, body, report)
    _extra_files(root, body, report)
    rows: list[Row] = []
    for entry in body["files"]:
        mine = _read_rows(root, entry, report)
        if mine:
            report.problems += check_segments(entry["path"], entry, mine)
            report.problems += check_order(entry["path"], mine)
        rows += mine
        report.files += 1
    report.rows = len(rows)
    _batches(body, headers, rows, report)
