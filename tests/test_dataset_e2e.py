"""Dataset export of a real run (MQTT + serial ptys, a key rotation, unsealed tail), checked
against restore byte for byte, read by pyarrow/pandas/mlcroissant, and verified from the outside."""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, restore
from tests.dataset_support import Run, cli, export_run, make_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def dataset(run: Run) -> Path:
    return export_run(run, run.base / "dataset")


def _rows(dataset: Path) -> list[dict[str, Any]]:
    """Every row, in reading order (the spool sequence number)."""
    rows: list[dict[str, Any]] = []
    for path in sorted((dataset / "data").rglob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: r["seq"])


def _body(dataset: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((dataset / "provenance.json").read_text())["body"]
    return body


def _payload(line: dict[str, Any]) -> bytes:
    value = line["payload"]
    return value.encode() if isinstance(value, str) else base64.b64decode(value["b64"])


def test_every_row_is_byte_exact_against_restore_with_its_batch_cid(
    run: Run, dataset: Path
) -> None:
    lines = restore(run.config, run.base / "restore.jsonl")
    rows = [r for r in _rows(dataset) if not r["duplicate"]]
    assert len(rows) == len(lines) == run.readings
    provenance = json.loads((dataset / "provenance.json").read_text())["body"]
    cids = {b["seq"]: b["cid"] for b in provenance["batches"]}
    for row, line in zip(rows, lines, strict=True):
        assert row["payload"] == _payload(line)
        assert (row["source"], row["topic"], row["batch_seq"]) == (
            line["source"],
            line["topic"],
            line["batch"],
        )
        assert row["received_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == line["received_at"]
        assert row["batch_cid"] == (None if line["batch"] is None else cids[line["batch"]])
    assert sum(r["batch_cid"] is None for r in rows) == 2
    assert {r["source"] for r in rows} == {"mqtt", "serial:pm", "serial:gps"}


def test_files_are_split_by_source_and_day_under_the_size_cap(dataset: Path) -> None:
    files = sorted((dataset / "data").rglob("*.parquet"))
    by_source = {p.parent.parent.name for p in files}
    assert by_source == {"mqtt", "serial-pm", "serial-gps"}
    assert len(files) > 3, "a 16 KiB cap splits each source into several parts"
    for path in files:
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
        last = sorted(path.parent.glob("*.parquet"))[-1]
        # A part is closed once its row groups reach the cap (the footer comes on top).
        assert path == last or path.stat().st_size >= 16 * 1024, path


def test_typed_columns_carry_units_and_flattened_json(dataset: Path) -> None:
    pm = pq.read_table(next((dataset / "data" / "serial-pm").rglob("*.parquet")))
    field = pm.schema.field("value.pm2_5")
    assert str(field.type) == "int64" and field.metadata[b"unit"] == b"ug/m3"
    assert json.loads(pm.schema.metadata[b"depin.units"])["value.pm2_5"] == "ug/m3"
    gps = pq.read_table(next((dataset / "data" / "serial-gps").rglob("*.parquet")))
    assert str(gps.schema.field("value.lat").type) == "double"
    mqtt = _rows(dataset)
    room2 = [r for r in mqtt if r["topic"] == "sensors/room2/env"]
    assert room2[3]["json.env.hum"] == 3 and room2[3]["json.env.co2.ppm"] == 400
    assert json.loads(room2[3]["json.tags"]) == ["a", 3]
    room1 = [r for r in mqtt if r["topic"] == "sensors/room1/t"]
    assert room1[2]["json.temp"] == 20.5 and room1[2]["json.ok"] is True
    blob = [r for r in mqtt if r["topic"] == "raw/blob"]
    assert blob[1]["payload"] == bytes([1, 0xFF, 0x00, 0xC3]) + b"\x80binary"


# mlcroissant's own use of rdflib and pandas 3.1 warns; our code is not involved.
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_pandas_and_mlcroissant_read_every_record_set(dataset: Path) -> None:
    import mlcroissant
    import pandas

    frame = pandas.read_parquet(dataset / "data" / "mqtt")
    assert len(frame) == sum(1 for r in _rows(dataset) if r["source"] == "mqtt")
    croissant = json.loads((dataset / "croissant.json").read_text())
    assert croissant["license"] == "CC0-1.0" and croissant["creator"]["name"] == "Test Lab"
    batches = _body(dataset)["batches"]
    assert [d["@id"] for d in croissant["prov:wasDerivedFrom"]] == [
        f"ipfs://{b['cid']}" for b in batches
    ]
    loaded = mlcroissant.Dataset(jsonld=dataset / "croissant.json")
    counts = {}
    for record_set in loaded.metadata.record_sets:
        records = list(loaded.records(record_set=record_set.uuid))
        counts[record_set.uuid] = len(records)
        assert all(isinstance(r[f"{record_set.uuid}/payload"], bytes) for r in records)
    assert counts == {"mqtt": 182, "serial-gps": 60, "serial-pm": 60}
    card = (dataset / "README.md").read_text()
    assert card.startswith("---\nlicense: cc0-1.0\n") and "config_name: serial-pm" in card


def test_verify_passes_with_the_pinned_genesis_key_and_says_tofu_without(
    run: Run, dataset: Path
) -> None:
    pinned = cli("dataset", "verify", str(dataset), "--gateway-key", run.genesis)
    assert pinned.returncode == 0, pinned.stdout
    assert (
        f"{len(_body(dataset)['batches'])} whole batches re-encoded" in pinned.stdout
        and "trust on first use" not in (pinned.stderr)
    )
    keys = json.loads((dataset / "provenance.json").read_text())["body"]["keys"]
    assert [k["key"] for k in keys] == [run.genesis, run.rotated]
    tofu = cli("dataset", "verify", str(dataset))
    assert tofu.returncode == 0 and "trust on first use" in tofu.stderr
    other = cli("dataset", "verify", str(dataset), "--gateway-key", run.rotated)
    assert other.returncode == 1 and "is not the --gateway-key" in other.stdout


def test_refuses_a_non_empty_out_directory_in_one_line(run: Run, dataset: Path) -> None:
    again = cli("dataset", "export", "--config", str(run.config), "--out", str(dataset))
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "exists and is not empty" in again.stderr
    inside = cli(
        "dataset", "export", "--config", str(run.config), "--out", str(run.base / "state" / "ds")
    )
    assert inside.returncode == 2 and "inside the state directory" in inside.stderr
    assert not (run.base / "state" / "ds").exists()


def test_a_source_and_time_cut_leaves_partial_batches_that_still_verify(run: Run) -> None:
    out = run.base / "cut"
    rows = _rows_of_run(run)
    middle = rows[len(rows) // 2]["received_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    done = cli(
        "dataset",
        "export",
        "--config",
        str(run.config),
        "--out",
        str(out),
        "--sources",
        "mqtt,serial:gps",
        "--from",
        middle,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads((out / "provenance.json").read_text())["body"]
    # Batches hold serial:pm readings too (those of a batch sealed by max_age may not).
    partial = [b for b in body["batches"] if not b["complete"]]
    assert len(partial) >= len(body["batches"]) // 2
    assert not (out / "data" / "serial-pm").exists()
    checked = cli("dataset", "verify", str(out), "--gateway-key", run.genesis)
    assert checked.returncode == 0, checked.stdout
    whole = len(body["batches"]) - len(partial)
    assert f"{whole} whole batches re-encoded" in checked.stdout
    assert f"{len(partial)} cut batches range-checked" in checked.stdout


def _rows_of_run(run: Run) -> list[dict[str, Any]]:
    return _rows(run.base / "dataset")


def test_a_terminal_on_stderr_gets_a_progress_line_and_a_pipe_does_not(run: Run) -> None:
    master, slave = os.openpty()
    argv = [
        sys.executable,
        "-m",
        "gateway.cli",
        "dataset",
        "export",
        "--config",
        str(run.config),
        "--out",
        str(run.base / "tty"),
    ]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        for _ in range(600):  # bounded: 600 reads of at most 0.5 s
            if not select.select([master], [], [], 0.5)[0]:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the export closed its end
                break
            seen += chunk
    finally:
        os.close(master)
        assert process.wait(timeout=120) == 0
        assert process.stdout is not None
        process.stdout.close()
    assert b"\rexporting [" in seen and f"{run.readings}/{run.readings} 100%".encode() in seen
    piped = cli("dataset", "export", "--config", str(run.config), "--out", str(run.base / "pipe"))
    assert piped.returncode == 0 and "\r" not in piped.stderr


def test_the_second_pass_reads_again_when_the_first_does_not_fit_in_memory(
    run: Run, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.config import load_config
    from gateway.dataset import export

    monkeypatch.setattr(export, "CACHE_BYTES", 0)
    options = export.ExportOptions(out=run.base / "reread", max_file_size=16 * 1024)
    summary = export.export_dataset(load_config(run.config), options)
    assert summary.rows == run.readings
    assert _rows(run.base / "reread") == _rows(dataset)


def test_an_empty_selection_fails_in_one_line_and_leaves_no_partial_directory(run: Run) -> None:
    out = run.base / "empty"
    done = cli(
        "dataset", "export", "--config", str(run.config), "--out", str(out), "--from", "2999-01-01"
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "nothing to export" in done.stderr
    assert not out.exists() and not (run.base / "empty.partial").exists()
    bad = cli("dataset", "export", "--config", str(run.config), "--out", str(out), "--to", "soon")
    assert bad.returncode == 2 and "is not a time" in bad.stderr


def test_verify_rejects_a_malformed_gateway_key_as_a_usage_error(dataset: Path) -> None:
    done = cli("dataset", "verify", str(dataset), "--gateway-key", "ed25519:abc")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--gateway-key" in done.stderr
