"""Tampering with an exported dataset: each change is caught by ``dataset verify`` and named by
file and row range (a flipped byte, a deleted, reordered or edited row, swapped files, an edited
typed column, a forged or re-signed provenance)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.dataset_support import Run, cli, export_run, make_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def dataset(run: Run) -> Path:
    return export_run(run, run.base / "dataset")


@pytest.fixture
def copy(dataset: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(dataset, target)
    return target


def _verify_fails(copy: Path, run: Run) -> str:
    result = cli("dataset", "verify", str(copy), "--gateway-key", run.genesis)
    assert result.returncode == 1, result.stdout
    return result.stdout


def _mqtt_file(copy: Path) -> Path:
    return sorted((copy / "data" / "mqtt").rglob("*.parquet"))[1]


def test_a_flipped_byte_in_a_parquet_file_is_named(copy: Path, run: Run) -> None:
    path = _mqtt_file(copy)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    name = path.relative_to(copy).as_posix()
    assert f"FAIL {name} rows 0-" in _verify_fails(copy, run)


def test_a_deleted_row_is_named_even_with_croissant_fixed(copy: Path, run: Run) -> None:
    from gateway.dataset.parquet import file_sha256

    path = _mqtt_file(copy)
    table = pq.read_table(path)
    pq.write_table(_without(table, 4), path, compression="zstd")
    croissant = json.loads((copy / "croissant.json").read_text())
    name = path.relative_to(copy).as_posix()
    for entry in croissant["distribution"]:
        if entry.get("contentUrl") == name:
            entry["sha256"] = file_sha256(path)
    (copy / "croissant.json").write_text(json.dumps(croissant))
    out = _verify_fails(copy, run)
    assert f"FAIL {name} rows 0-" in out and "sha256 differs from provenance" in out
    assert "is missing (deleted row?)" in out
    # croissant.json now vouches for the rewritten file: only the signed provenance disagrees.
    assert f"FAIL croissant.json: sha256 of {name} is not the signed one" in out


def _without(table: Any, row: int) -> Any:
    import pyarrow as pa

    return pa.concat_tables([table.slice(0, row), table.slice(row + 1)])


def test_swapped_files_are_both_named(copy: Path, run: Run) -> None:
    first, second = sorted((copy / "data" / "mqtt").rglob("*.parquet"))[:2]
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    out = _verify_fails(copy, run)
    for path in (first, second):
        assert f"FAIL {path.relative_to(copy).as_posix()} rows" in out


def test_a_forged_provenance_signature_is_caught(copy: Path, run: Run) -> None:
    from nacl.signing import SigningKey

    from gateway.dataset import provenance
    from gateway.keys import load_identity

    document = json.loads((copy / "provenance.json").read_text())
    body = document["body"]
    body["unsealed_rows"] = 0  # the forger's claim
    forged = provenance.sign(body, SigningKey.generate())
    (copy / "provenance.json").write_text(json.dumps(forged))
    out = _verify_fails(copy, run)
    assert (
        "FAIL provenance.json: signed by ed25519:" in out and "not by this gateway's newest" in out
    )
    retired = next((run.base / "state").glob("identity.retired-*.key"))
    (copy / "provenance.json").write_text(json.dumps(provenance.sign(body, load_identity(retired))))
    assert f"FAIL provenance.json: signed by {run.genesis}, not by" in _verify_fails(copy, run)
    document["signature"]["sig"] = "00" * 64
    (copy / "provenance.json").write_text(json.dumps(document))
    assert "FAIL provenance.json: signature: does not verify" in _verify_fails(copy, run)


def _rewrite(copy: Path, path: Path, table: Any) -> str:
    """Write ``table`` over ``path`` and fix croissant.json's sha256, as a careful forger would."""
    from gateway.dataset.parquet import file_sha256

    pq.write_table(table, path, compression="zstd")
    croissant = json.loads((copy / "croissant.json").read_text())
    name = path.relative_to(copy).as_posix()
    for entry in croissant["distribution"]:
        if entry.get("contentUrl") == name:
            entry["sha256"] = file_sha256(path)
    (copy / "croissant.json").write_text(json.dumps(croissant))
    return name


def test_two_reordered_rows_are_named(copy: Path, run: Run) -> None:
    import pyarrow as pa

    path = _mqtt_file(copy)
    table = pq.read_table(path)
    order = list(range(table.num_rows))
    order[5], order[6] = 6, 5
    name = _rewrite(copy, path, table.take(pa.array(order)))
    out = _verify_fails(copy, run)
    assert f"FAIL {name} rows 5-6: out of order" in out


def test_an_edited_payload_is_caught_by_the_signed_plaintext_hash(copy: Path, run: Run) -> None:
    import pyarrow as pa

    path = _mqtt_file(copy)
    table = pq.read_table(path)
    payloads = table.column("payload").to_pylist()
    payloads[7] = payloads[7].replace(b"2", b"3", 1) if b"2" in payloads[7] else b"x"
    column = table.schema.get_field_index("payload")
    name = _rewrite(
        copy,
        path,
        table.set_column(column, table.schema.field(column), pa.array(payloads, pa.binary())),
    )
    out = _verify_fails(copy, run)
    assert (
        "rows do not re-encode to the signed plaintext hash" in out and f"FAIL {name} rows" in out
    )


def test_an_edited_typed_column_is_named_against_its_payload(copy: Path, run: Run) -> None:
    import pyarrow as pa

    path = _mqtt_file(copy)
    table = pq.read_table(path)
    temps = table.column("json.temp").to_pylist()
    row = next(i for i, t in enumerate(temps) if t is not None)
    temps[row] += 10.0
    column = table.schema.get_field_index("json.temp")
    field = table.schema.field(column)
    name = _rewrite(copy, path, table.set_column(column, field, pa.array(temps, pa.float64())))
    out = _verify_fails(copy, run)
    assert f"FAIL {name} row {row}: column json.temp holds {temps[row]!r}" in out
