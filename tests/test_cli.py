"""The operator's commands: init never overwrites keys; status and restore work on a real daemon."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.keys import load_identity
from gateway.testing.broker import Broker
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
    assert b"depin_gateway_readings_total 10.0" in metrics.read()
    publisher.close()


def test_status_without_a_daemon_is_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, 1)
    result = cli("status", "--config", str(config))
    assert result.returncode == 1
    assert "is it started?" in result.stderr and "Traceback" not in result.stderr


def _one_line_exit_2(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() and result.stderr.strip().count("\n") == 0, result.stderr
    assert names in result.stderr, result.stderr


# (arguments, what the one line must name); {d} is a scratch directory holding "afile" and an
# initialised gateway (g.toml, state/).
BAD_ARGUMENTS = [
    (["init", "--config", "{d}/afile/x.toml", "--state-dir", "{d}/s2"], "--config"),
    (["init", "--config", "{d}/new.toml", "--state-dir", "{d}/afile"], "--state-dir"),
    (["init", "--config", "{d}/new.toml", "--state-dir", "~nosuchuser/x"], "--state-dir"),
    (["init", "--config", "{d}/new.toml", "--state-dir", "{d}/s3", "--id", "a/b#"], "--id"),
    (["init", "--config", "{d}/new.toml", "--state-dir", "{d}/s3", "--id", ""], "--id"),
    (["init", "--config", "{d}", "--state-dir", "{d}/s3"], "--config"),
    (["init", "--config", "{d}/new.toml", "--state-dir", "{d}/s3", "--owner-pub", "x25519:zz"],
     "--owner-pub"),
    (["init", "--config", "{d}/new.toml", "--state-dir", "{d}/s3", "--mqtt-port", "0"],
     "--mqtt-port"),
    (["restore", "--config", "{d}/g.toml", "--out", "{d}"], "--out"),
    (["restore", "--config", "{d}/g.toml", "--out", "{d}/nodir/x"], "--out"),
    (["restore", "--config", "{d}/g.toml", "--out", "{d}/afile/x"], "--out"),
    (["restore", "--config", "{d}/g.toml", "--out", "{d}/o", "--owner-key", "{d}/none"],
     "--owner-key"),
    (["restore", "--out", "{d}/o", "--from-network", "--gateway-key", "zz", "--head", "b",
      "--nodes", "http://127.0.0.1:1", "--owner-key", "{d}/state/owner.key"], "--gateway-key"),
    (["restore", "--out", "{d}/o", "--from-network", "--gateway-key", "ed25519:" + "ab" * 32,
      "--head", "b", "--nodes", "http://h:99999", "--owner-key", "{d}/state/owner.key"],
     "--nodes"),
    (["owner-key", "--out", "{d}"], "--out"),
    (["owner-key", "--out", "{d}/afile/k"], "--out"),
    (["owner-key", "--out", "{d}/nodir/k"], "--out"),
    (["owner-key", "--out", "{d}/state/owner.key"], "refusing to overwrite"),
    (["export-car", "--config", "{d}/g.toml", "--out", "{d}"], "--out"),
    (["verify", "--config", "{d}"], "cannot read"),
    (["verify", "--config", "{d}/afile"], "gateway.state_dir"),
    (["fleet", "--config", "{d}/g.toml", "--broker", "mqtt://h:99999"], "--broker"),
    (["fleet", "--config", "{d}/g.toml", "--broker", "http://x"], "--broker"),
    (["fleet", "--broker", "mqtt://127.0.0.1:1", "--stale", "nan"], "--stale"),
    (["demo", "--rate", "0"], "--rate"),
    (["demo", "--duration", "inf"], "--duration"),
    (["demo", "--workdir", "{d}/afile"], "--workdir"),
    (["demo", "--workdir", "{d}/afile/x"], "--workdir"),
    (["drivers", "decode", "nosuch", "00"], "driver"),
    (["drivers", "decode", "pms5003", "zz"], "HEX"),
    (["drivers", "decode", "pms5003", "00", "--option", "x"], "--option"),
    (["piece-cid", "{d}/none"], "FILE"),
    (["piece-cid", "{d}"], "FILE"),
    (["node", "init", "--config", "{d}/n.toml", "--data-dir", "{d}/afile"], "--data-dir"),
    (["node", "init", "--config", "{d}/n.toml", "--data-dir", "{d}/nd", "--listen", "x"],
     "--listen"),
    (["node", "run", "--config", "{d}/none.toml"], "does not exist"),
    (["run", "--config", "{d}/none.toml"], "does not exist"),
    (["status", "--config", "{d}/a\x01b"], "does not exist"),
    (["frobnicate"], "invalid choice"),
]  # fmt: skip


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("scratch")
    (where / "afile").write_text("")
    made = cli("init", "--config", str(where / "g.toml"), "--state-dir", str(where / "state"))
    assert made.returncode == 0, made.stderr
    return where


def _tree(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() if p.is_file() else b"/"
            for p in sorted(where.rglob("*"))}  # fmt: skip


@pytest.mark.parametrize(("arguments", "names"), BAD_ARGUMENTS)
def test_every_argument_mistake_is_one_line_exit_2_and_writes_nothing(
    scratch: Path, arguments: list[str], names: str
) -> None:
    """Issue 8 item 11: no traceback, no half-written file, for any subcommand's arguments."""
    before = _tree(scratch)
    _one_line_exit_2(cli(*(a.replace("{d}", str(scratch)) for a in arguments)), names)
    assert _tree(scratch) == before


def test_init_refuses_an_id_that_the_config_would_refuse_before_writing(tmp_path: Path) -> None:
    """``init --id "a/b#"`` used to write a config that then failed to load."""
    _one_line_exit_2(cli("init", "--config", str(tmp_path / "g.toml"), "--state-dir",
                         str(tmp_path / "s"), "--id", "a/b#"), "--id")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    made = cli("init", "--config", str(tmp_path / "g.toml"), "--state-dir", str(tmp_path / "s"),
               "--id", "ok-id_1")  # fmt: skip
    assert made.returncode == 0 and load_config(tmp_path / "g.toml").gateway.id == "ok-id_1"


def test_restore_into_a_directory_leaves_no_partial_file(scratch: Path) -> None:
    target = scratch / "outdir"
    target.mkdir()
    try:
        _one_line_exit_2(cli("restore", "--config", str(scratch / "g.toml"), "--out", str(target)),
                         "--out")  # fmt: skip
        assert [p.name for p in scratch.iterdir() if "partial" in p.name] == []
        assert list(target.iterdir()) == []
    finally:
        target.rmdir()


@pytest.mark.parametrize("listen", ["busy", "nosuchhost.invalid:8787", "192.0.2.1:8787"])
def test_run_with_a_status_address_it_cannot_bind_is_one_line_exit_2(
    tmp_path: Path, listen: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}" if listen == "busy" else listen
        config = write_config(tmp_path, 1)
        config.write_text(config.read_text().replace("listen = ", f'listen = "{address}"\n#'))
        result = cli("run", "--config", str(config))
    _one_line_exit_2(result, "status.listen")
    assert "cannot" in result.stderr


def test_status_server_bind_failure_is_a_config_error() -> None:
    """The race behind the run preflight: the port is taken between the check and the bind."""
    from gateway.daemon.http import start_status_server
    from gateway.errors import ConfigError
    from gateway.status import StatusSnapshot

    def never() -> StatusSnapshot:
        raise AssertionError("no request can arrive: the server never listens")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError) as info:
            asyncio.run(start_status_server(never, "127.0.0.1", taken.getsockname()[1]))
    assert info.value.key == "status.listen"


@pytest.mark.parametrize(("duration", "rate"), [(60.0, 0.0), (float("nan"), 1.0), (1.0, -5.0)])
def test_run_demo_refuses_rates_and_durations_that_never_end_before_starting(
    duration: float, rate: float
) -> None:
    from gateway.cli.demo import run_demo
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="finite number > 0"):
        run_demo(duration=duration, rate=rate)
