"""The operator's commands: init never overwrites keys; status and restore work on a real daemon."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.broker import Broker
from gateway.config import load_config
from gateway.keys import load_identity
from tests.conftest import GatewayProcess, Publisher, write_config

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, cwd=ROOT,
        check=False,
    )  # fmt: skip


def test_init_writes_valid_config_and_0600_keys_and_never_overwrites(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "gateway.toml"
    state = tmp_path / "state"
    first = cli("init", "--config", str(config), "--state-dir", str(state))
    assert first.returncode == 0, first.stderr
    loaded = load_config(config)
    assert loaded.state_dir == state
    assert len(loaded.owner.public_keys) == 1, "the operator is the owner by default"
    for name in ("identity.key", "owner.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    key = load_identity(state / "identity.key")
    config.unlink()
    second = cli("init", "--config", str(config), "--state-dir", str(state))
    assert second.returncode == 0, second.stderr
    assert bytes(load_identity(state / "identity.key")) == bytes(key), "identity kept"
    assert "never overwritten" in second.stdout
    assert load_config(config).owner.public_keys == loaded.owner.public_keys


def test_init_with_owner_pub_uses_that_key(tmp_path: Path) -> None:
    made = cli("owner-key", "--out", str(tmp_path / "owner.key"))
    assert made.returncode == 0
    public = made.stdout.strip()
    assert public.startswith("x25519:")
    assert stat.S_IMODE((tmp_path / "owner.key").stat().st_mode) == 0o600
    result = cli("init", "--config", str(tmp_path / "g.toml"), "--state-dir", str(tmp_path / "s"),
                 "--owner-pub", public)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load_config(tmp_path / "g.toml").owner.public_keys == (public,)
    assert not (tmp_path / "s" / "owner.key").exists()
    again = cli("owner-key", "--out", str(tmp_path / "owner.key"))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_status_json_has_the_stable_fields_and_no_secrets(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    publisher.publish_all([("sensors/x", json.dumps({"id": i})) for i in range(10)])
    gw.wait_for(lambda s: s["readings_total"] == 10)
    result = cli("status", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    for field in ("gateway_id", "public_key", "version", "uptime_s", "readings_total",
                  "spool_pending", "batches_sealed", "batches_durable", "quarantined",
                  "backpressure", "ledger_head"):  # fmt: skip
        assert field in status, field
    assert status["readings_total"] == 10 and status["backpressure"] is False
    assert status["disk"]["bytes_written"] > 0 and "clock" in status
    secret = (tmp_path / "state" / "identity.key").read_text().split(":")[1].strip()
    assert secret not in result.stdout
    human = cli("status", "--config", str(config))
    assert "readings  10 durable" in human.stdout
    metrics = __import__("urllib.request").request.urlopen(
        gw.status_url.replace("/status", "/metrics")
    )
    assert b"depin_readings_total 10.0" in metrics.read()
    publisher.close()


def test_status_without_a_daemon_is_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, 1)
    result = cli("status", "--config", str(config))
    assert result.returncode == 1
    assert "is it started?" in result.stderr and "Traceback" not in result.stderr
