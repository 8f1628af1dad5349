"""``depin-gateway devnet`` as a real subprocess: its first stdout line, the deployed contracts,
the registered and approved providers read back with eth_call, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.chain.abi import abi_of
from gateway.chain.jsonrpc import RpcClient

REQUIRED = {"rpc_url", "chain_id", "registry", "contracts", "market_nodes"}
REQUIRED |= {"foc_providers", "wallet_key_file", "config"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _eth_call(rpc: RpcClient, to: str, name: str, function: str, *args: Any) -> tuple[Any, ...]:
    abi = abi_of(name)
    return tuple(abi.decode(function, rpc.eth_call(to, abi.calldata(function, *args))))


def test_devnet_prints_its_json_serves_registered_providers_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    argv = [sys.executable, "-m", "gateway.cli", "devnet", "--nodes", "1", "--providers", "1"]
    stderr = tmp_path / "devnet.stderr"
    with open(stderr, "wb") as err:
        process = subprocess.Popen(
            [*argv, "--dir", str(tmp_path / "d")],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, stderr.read_text()
        info = json.loads(line)
        assert set(info) >= REQUIRED
        assert info["chain_id"] == 31415926
        assert info["rpc_url"].startswith("http://127.0.0.1:")
        assert info["registry"] == info["contracts"]["service_provider_registry"]
        assert '[chain]\nnetwork = "devnet"' in info["config"]
        assert "[storage]" in info["config"] and "[foc]" in info["config"]
        key = Path(info["wallet_key_file"])
        assert key.stat().st_mode & 0o777 == 0o600

        rpc = RpcClient(info["rpc_url"])
        assert rpc.chain_id() == 31415926
        for name, address in info["contracts"].items():
            assert rpc.call("eth_getCode", [address, "latest"]) not in ("0x", None), name

        registry = info["registry"]
        result = _eth_call(
            rpc, registry, "ServiceProviderRegistry", "getProvidersByProductType", 0, True, 0, 10
        )
        providers = result[0][0]
        assert len(providers) == 1
        provider_id, _, product, values = providers[0]
        keys = list(product[1])
        service_url = bytes(values[keys.index("serviceURL")]).decode()
        assert service_url.rstrip("/") == info["foc_providers"][0]
        fwss = info["contracts"]["fwss"]
        assert _eth_call(
            rpc, fwss, "FilecoinWarmStorageService", "isProviderApproved", provider_id
        ) == (True,)
        ids, has_more = _eth_call(
            rpc, registry, "ServiceProviderRegistry", "getAllActiveProviders", 0, 10
        )
        assert (list(ids), has_more) == ([provider_id], False)
        pids = [int(pid) for pid in info["pids"].values()]
        assert len(pids) == 3 and all(_alive(p) for p in pids)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        assert process.stdout is not None
        process.stdout.close()
    assert code == 0
    assert _wait_gone(pids) == []


def test_devnet_refuses_to_reuse_a_wallet_and_leaves_nothing_running(tmp_path: Path) -> None:
    """A DIR that already holds wallet.key: one clear line, exit 1, and the anvil it had started
    is stopped (its port refuses connections once the command has returned)."""
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "wallet.key").write_text("not ours\n")
    argv = [sys.executable, "-m", "gateway.cli", "devnet", "--nodes", "0", "--providers", "0"]
    done = subprocess.run(
        [*argv, "--dir", str(directory)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 1 and done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "refusing to overwrite" in lines[0], lines
    logs = list((directory / "logs").glob("anvil-*.log"))
    assert len(logs) == 1
    port = int(logs[0].stem.split("-")[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_devnet_rejects_impossible_sizes_with_exit_2(tmp_path: Path) -> None:
    for flags in (["--providers", "99"], ["--epoch-seconds", "0"], ["--proving-period", "3"]):
        argv = [sys.executable, "-m", "gateway.cli", "devnet", "--dir", str(tmp_path), *flags]
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert done.returncode == 2, flags
        assert len(done.stderr.decode().strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "logs").exists()


def test_kill_9_of_the_devnet_takes_its_children_with_it(tmp_path: Path) -> None:
    """No stop path runs on SIGKILL: anvil and the nodes go because they asked the kernel to
    signal them when their parent dies (PR_SET_PDEATHSIG)."""
    argv = [sys.executable, "-m", "gateway.cli", "devnet", "--nodes", "1", "--providers", "1"]
    with open(tmp_path / "devnet.stderr", "wb") as err:
        process = subprocess.Popen(
            [*argv, "--dir", str(tmp_path / "d")], stdout=subprocess.PIPE, stderr=err
        )
    try:
        assert process.stdout is not None
        pids = [int(pid) for pid in json.loads(process.stdout.readline())["pids"].values()]
        assert len(pids) == 3 and all(_alive(p) for p in pids)
    finally:
        process.kill()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert _wait_gone(pids) == []
