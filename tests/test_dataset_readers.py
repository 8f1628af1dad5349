"""Readers never write (DESIGN section 2): ``dataset export`` beside a live daemon, under strace.

The daemon keeps sealing and appending while the export runs; the export may not create, open
for writing, truncate, rename or delete anything in the state directory, and what it wrote must
verify (readings that arrived after its first pass are simply not in it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.testing.broker import Broker
from tests.conftest import ROOT, GatewayProcess, Publisher, write_config
from tests.dataset_support import cli
from tests.test_readers_never_write import _MUTATING, _writes_into

pytestmark = pytest.mark.slow


def test_dataset_export_beside_a_live_daemon_never_writes_into_the_state_dir(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port, extra="[batch]\nmax_readings = 20\n")
    state = tmp_path / "state"
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    publisher.publish_all([("sensors/t", json.dumps({"id": i, "v": i / 2})) for i in range(100)])
    gw.wait_for(lambda s: s["readings_total"] == 100 and s["batches_sealed"] >= 5)
    done = threading.Event()

    def keep_publishing() -> None:
        for i in range(100, 400):  # bounded: at most 300 more readings while the export runs
            if done.is_set():
                return
            publisher.publish_all([("sensors/t", json.dumps({"id": i, "v": i / 2}))])

    writer = threading.Thread(target=keep_publishing)
    writer.start()
    trace, out = tmp_path / "export.trace", tmp_path / "ds"
    argv = [
        "strace",
        "-f",
        "-qq",
        "-y",
        "-e",
        "signal=none",
        "-e",
        f"trace={_MUTATING}",
        "-o",
        str(trace),
        sys.executable,
        "-m",
        "gateway.cli",
        "dataset",
        "export",
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    try:
        result = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        done.set()
        writer.join(timeout=60)
        publisher.close()
    assert gw.stop() == 0
    assert result.returncode == 0, result.stderr
    assert _writes_into(trace, state) == [], "dataset export wrote into the state directory"
    assert str(out) in trace.read_text(), "the trace covers the export's own writes"
    checked = cli("dataset", "verify", str(out))
    assert checked.returncode == 0, checked.stdout


def test_an_export_of_a_spool_with_no_sealed_batch_yet_verifies_as_unsealed(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port, extra='[batch]\nmax_age = "1h"\n')
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    publisher.publish_all([("sensors/t", json.dumps({"id": i})) for i in range(5)])
    publisher.close()
    gw.wait_for(lambda s: s["readings_total"] == 5)
    gw.kill9()  # nothing sealed: a graceful stop would seal the rest
    out = tmp_path / "ds"
    done = cli("dataset", "export", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "0 sealed batches" in done.stdout and "5 unsealed" in done.stdout
    checked = cli("dataset", "verify", str(out))
    assert checked.returncode == 0, checked.stdout
    assert "5 unsealed rows" in checked.stdout
