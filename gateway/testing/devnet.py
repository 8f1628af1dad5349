"""``depin-gateway devnet``: an offline Filecoin in a box on loopback.

Starts, in this order, and stops in reverse (by PID) on SIGTERM, SIGINT or any error:

1. anvil (chain id 31415926, a free 127.0.0.1 port) with our FOC stand-ins deployed from the
   committed artifacts and the beacon mock at 0xfE00...0006;
2. the client wallet ``DIR/wallet.key`` (0600), funded with FIL and MockUSDFC;
3. N market storage nodes and N FOC providers, all real ``python -m gateway.node run``
   processes; each provider has its own wallet (``DIR/providerI/wallet.key``), is registered in
   the ServiceProviderRegistry with its node's URL as serviceURL and approved in FWSS.

Then it prints one JSON line (DESIGN section 5) and ticks: each ``epoch_seconds`` it mines one
block (anvil itself only mines on transactions) and lets each provider's prover schedule and
prove its data sets, reading piece bytes from the provider's own node (``GET /piece/{cid}``).
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gateway.chain.anvil import Anvil, free_port
from gateway.chain.deploy import (
    PdpOffering,
    ProvingConfig,
    approve_provider,
    fund,
    register_provider,
)
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.prover import Prover
from gateway.chain.tx import TxSender
from gateway.errors import ChainError, GatewayError
from gateway.keys import create_identity
from gateway.keys.wallet import create_wallet
from gateway.testing.focnet import FIL, USDFC, FocChain, start_foc_chain

__all__ = ["Devnet", "DevnetInfo", "NodeProcess", "config_snippet"]

CLIENT_FIL = 100 * FIL
CLIENT_USDFC = 1000 * USDFC
PROVIDER_FIL = 100 * FIL  # gas and the 0.1 FIL sybil fee per data set


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Looked up once in the parent: the child between fork and exec only makes the call.
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None)


def die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the devnet dies, even by SIGKILL, so a killed
    devnet never leaves anvil or nodes behind (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op,
    and the normal stop path still stops every child by PID)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class NodeProcess:
    """One storage node (``python -m gateway.node run``) on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "listen": f"127.0.0.1:{self.port}",
            "data_dir": str(directory / "data"),
            "capacity": "1GiB",
        }
        self.config = directory / "node.toml"
        self.config.write_text(
            "[node]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        )
        create_identity(directory / "data" / "node.key")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.directory / "node.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.node", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - the devnet has one thread
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/pdp/ping", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise GatewayError(f"storage node did not start; see {self.directory / 'node.log'}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def config_snippet(chain: FocChain, rpc_url: str, market: list[str], providers: list[str]) -> str:
    """TOML that, merged into a gateway config, points it at this devnet (DESIGN section 5)."""
    d = chain.deployment
    lines = [
        "[chain]",
        'network = "devnet"',
        f"rpc_url = {json.dumps(rpc_url)}",
        f"chain_id = {chain.chain_id}",
        f'fwss = "{d.fwss}"',
        f'pdp_verifier = "{d.pdp_verifier}"',
        f'filecoin_pay = "{d.filecoin_pay}"',
        f'service_provider_registry = "{d.service_provider_registry}"',
        f'usdfc = "{d.usdfc}"',
        "",
        "[storage]",
        f"nodes = {json.dumps(market)}",
        "",
        "[foc]",
        f"providers = {json.dumps(providers)}",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DevnetInfo:
    rpc_url: str
    chain_id: int
    registry: str
    contracts: dict[str, str]
    market_nodes: list[str]
    foc_providers: list[str]
    wallet_key_file: str
    config: str
    pids: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        keys = (
            "rpc_url", "chain_id", "registry", "contracts", "market_nodes",
            "foc_providers", "wallet_key_file", "config", "pids",
        )  # fmt: skip
        return json.dumps({k: getattr(self, k) for k in keys}, separators=(",", ":"))


def _fetch_piece(base_url: str, cid: str) -> bytes:
    with urllib.request.urlopen(f"{base_url}/piece/{cid}", timeout=30) as reply:  # noqa: S310
        data: bytes = reply.read()
        return data


class Devnet:
    def __init__(
        self,
        directory: Path,
        *,
        nodes: int = 1,
        providers: int = 1,
        proving: ProvingConfig | None = None,
        epoch_seconds: float = 1.0,
        log: TextIO = sys.stderr,
    ) -> None:
        self.directory = directory
        self.node_count = nodes
        self.provider_count = providers
        self.proving = proving or ProvingConfig()
        self.epoch_seconds = epoch_seconds
        self.log = log
        self.stopping = threading.Event()
        self.provers: list[Prover] = []
        self._stack = ExitStack()
        self.rpc: RpcClient | None = None

    def start(self) -> DevnetInfo:
        try:
            return self._start()
        except BaseException:
            self._stack.close()
            raise

    def _start(self) -> DevnetInfo:
        self.directory.mkdir(parents=True, exist_ok=True)
        anvil = Anvil(self.directory / "logs", preexec_fn=die_with_parent)
        anvil.start()
        self._stack.callback(anvil.stop)
        chain = start_foc_chain(anvil.url, anvil.chain_id, self.proving)
        self.rpc = chain.rpc
        wallet_path = self.directory / "wallet.key"
        client = create_wallet(wallet_path)
        fund(chain.deployer, chain.deployment, client.address, CLIENT_FIL, CLIENT_USDFC)
        market = [self._node(self.directory / f"node{i}") for i in range(self.node_count)]
        providers = [self._provider(chain, i) for i in range(self.provider_count)]
        pids = {"anvil": anvil.process.pid if anvil.process else 0}
        return DevnetInfo(
            rpc_url=anvil.url,
            chain_id=anvil.chain_id,
            registry=chain.deployment.service_provider_registry,
            contracts=chain.deployment.addresses(),
            market_nodes=[n.url for n in market],
            foc_providers=[n.url for n in providers],
            wallet_key_file=str(wallet_path),
            config=config_snippet(
                chain, anvil.url, [n.url for n in market], [n.url for n in providers]
            ),
            pids=pids | {f"node:{n.url}": n.process.pid for n in market + providers if n.process},
        )

    def _node(self, directory: Path) -> NodeProcess:
        node = NodeProcess(directory)
        node.start()
        self._stack.callback(node.stop)
        return node

    def _provider(self, chain: FocChain, index: int) -> NodeProcess:
        directory = self.directory / f"provider{index}"
        node = self._node(directory)
        sender = TxSender(chain.rpc, create_wallet(directory / "wallet.key"), chain.chain_id)
        fund(chain.deployer, chain.deployment, sender.address, PROVIDER_FIL, 0)
        offering = PdpOffering(
            node.url + "/",
            min_proving_period=self.proving.max_proving_period,
            payment_token=chain.deployment.usdfc,
        )
        provider_id = register_provider(
            sender, chain.deployment, f"devnet-provider-{index}", offering
        )
        approve_provider(chain.deployer, chain.deployment, provider_id)
        url = node.url
        self.provers.append(
            Prover(sender, chain.deployment, self.proving, lambda cid: _fetch_piece(url, cid))
        )
        return node

    def tick(self) -> None:
        """One epoch: mine a block, then each provider schedules or proves its data sets."""
        if self.rpc is None:
            raise ChainError("", "the devnet is not started")
        self.rpc.call("evm_mine")
        for prover in self.provers:
            for result in prover.step():
                detail = f" ({result.reason})" if result.reason else ""
                print(
                    f"devnet: data set {result.set_id}: {result.action}{detail}",
                    file=self.log,
                    flush=True,
                )

    def run(self) -> None:
        while not self.stopping.wait(self.epoch_seconds):
            try:
                self.tick()
            except GatewayError as exc:  # a failed epoch is logged; the next one tries again
                print(f"devnet: {exc}", file=self.log, flush=True)

    def stop(self) -> None:
        self.stopping.set()
        self._stack.close()
