"""`depin-gateway doctor` against real brokers, real pseudo-terminals and real key files."""

from __future__ import annotations

import grp
import os
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.testing.broker import Broker, free_port
from tests.conftest import ROOT, write_config

DROPIN = (ROOT / "systemd" / "mosquitto-depin.conf").read_text()


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, list[str]]]:
    code = main(["doctor", *args])
    lines: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines():
        _, _, rest = line.partition("  ")
        lines.setdefault(rest.split()[0] if rest else "summary", []).append(line)
    return code, lines


@pytest.mark.slow
def test_default_queue_limit_fails_and_our_dropin_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mosquitto's default max_queued_messages (1000) is caught by the probe with its fix; the
    shipped drop-in passes, and then every check passes and doctor exits 0."""
    with Broker(tmp_path / "default", extra="max_queued_messages 1000\n") as default:
        config = write_config(tmp_path, default.port)
        code, lines = _doctor(capsys, "--config", str(config), "--skip", "clock")
    assert code == 1
    queue = lines["broker-queue"][0]
    assert queue.startswith("FAIL") and "kept 1000 of 1200" in queue
    assert "-> fix: install systemd/mosquitto-depin.conf" in queue
    assert lines["broker"][0].startswith("PASS")

    with Broker(tmp_path / "dropin", extra=DROPIN) as ours:
        config = write_config(tmp_path, ours.port)
        code, lines = _doctor(capsys, "--config", str(config), "--skip", "clock")
    assert lines["broker-queue"][0].startswith("PASS"), lines
    assert code == 0, lines
    assert lines["summary"] == ["doctor: all checks passed"]


def test_missing_port_unreadable_port_open_key_and_dead_peers_each_say_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing serial port, a pty the service user cannot open, a 0644 key, no broker, a dead
    storage node and a dead chain RPC: one FAIL line each, with its fix; exit 1."""
    leader, follower = os.openpty()
    try:
        pty = os.ttyname(follower)
        extra = (
            '[[serial]]\nname = "pm"\nport = "/dev/ttyDOESNOTEXIST"\ndriver = "pms5003"\n'
            f'[[serial]]\nname = "co2"\nport = "{pty}"\ndriver = "mhz19"\n'
            f'[storage]\nnodes = ["http://127.0.0.1:{free_port()}"]\n'
        )
        config = write_config(tmp_path, free_port(), extra)
        key = tmp_path / "state" / "identity.key"
        key.chmod(0o644)
        os.chown(pty, 0, grp.getgrnam("dialout").gr_gid)  # like a USB serial adapter
        os.chmod(pty, 0o660)
        dead_rpc = f"http://127.0.0.1:{free_port()}"
        code, lines = _doctor(capsys, "--config", str(config), "--user", "nobody",
                              "--rpc", dead_rpc)  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert code == 1
    broker = lines["broker"][0]
    assert broker.startswith("FAIL") and "-> fix: start the broker" in broker
    missing, unreadable = lines["serial"]
    assert missing.startswith("FAIL") and "/dev/ttyDOESNOTEXIST" in missing
    assert "-> fix: plug the sensor in" in missing
    assert unreadable.startswith("FAIL") and "nobody cannot read/write" in unreadable
    assert "-> fix: usermod -aG dialout nobody" in unreadable
    open_key = next(line for line in lines["keys"] if "identity.key" in line)
    assert open_key.startswith("FAIL") and f"-> fix: chmod 600 {key}" in open_key
    assert lines["storage"][0].startswith("FAIL") and "-> fix:" in lines["storage"][0]
    assert lines["chain"][0].startswith("FAIL") and dead_rpc in lines["chain"][0]
    assert all(len(v) >= 1 for v in lines.values())


def test_unknown_skip_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--skip", "nope"]) == 2
    assert "unknown check 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_chain_rpc_and_wallet_funding_against_a_real_anvil(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty wallet is a FAIL with the address to fund; once funded it passes."""
    from gateway.chain.anvil import Anvil
    from gateway.chain.jsonrpc import RpcClient
    from gateway.keys.wallet import create_wallet

    config = write_config(tmp_path, free_port())
    wallet = create_wallet(tmp_path / "state" / "wallet.key")
    with Anvil(tmp_path / "anvil") as anvil:
        skip = ["--skip", "broker", "--skip", "clock", "--rpc", anvil.url]
        code, lines = _doctor(capsys, "--config", str(config), *skip)
        assert lines["chain"][0].startswith("PASS") and "chain id 31415926" in lines["chain"][0]
        assert (
            lines["wallet"][0].startswith("FAIL")
            and f"send FIL to {wallet.address}" in (lines["wallet"][0])
        )
        assert code == 1
        RpcClient(anvil.url).call("anvil_setBalance", [wallet.address, hex(10**18)])
        code, lines = _doctor(capsys, "--config", str(config), *skip)
    assert (
        lines["wallet"][0].startswith("PASS")
        and "1000000000000000000 attoFIL" in (lines["wallet"][0])
    )
    assert code == 0, lines
