"""The devnet's providers prove on chain: a piece stored on a provider node (its own HTTP API) and
committed to a data set (signed by the devnet's client wallet) is proven by the devnet's prover
loop within a few short proving periods, with challenges the contract drew."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from gateway.chain.jsonrpc import RpcClient
from gateway.chain.tx import TxSender
from gateway.keys.wallet import load_wallet
from gateway.market.epoch import epoch_at
from gateway.market.messages import Ask, DealAcceptance
from gateway.piece.cid import piece_cid_v2
from gateway.piece.commp import commp
from gateway.testing.focnet import USDFC, deposit_with_permit
from gateway.testing.node_client import SigningClient, make_proposal
from tests.devnet_support import PDP, add_extra, add_pieces, create_extra, create_set

FAST = ["--proving-period", "12", "--challenge-window", "4", "--challenge-finality", "2"]


async def _store_on_node(url: str, data: bytes) -> None:
    """The node's own market flow: signed ask, deal, upload (what a gateway does today)."""
    client = SigningClient(url, SigningKey.generate(), time.time)
    try:
        status, ask_wire, _ = await client.send("GET", "/market/v1/ask", sign=False)
        assert status == 200
        ask, _ = Ask.open(ask_wire)
        wire = make_proposal(client.key, ask.provider, data, epoch_at(time.time()))
        status, body, _ = await client.send("POST", "/market/v1/deals", json_body=wire)
        assert status == 200, body
        acceptance, _ = DealAcceptance.open(body)
        assert acceptance.accepted
        upload_url = acceptance.upload_url
        status, body, _ = await client.send("PUT", upload_url, data)
        assert status == 204, body
    finally:
        await client.close()


class _Chain:
    """The FocChain shape the support helpers need, built from the devnet's JSON line."""

    def __init__(self, info: dict[str, Any]) -> None:
        from gateway.chain.deploy import Deployment

        self.rpc = RpcClient(info["rpc_url"])
        self.chain_id = info["chain_id"]
        contracts = info["contracts"]
        self.deployment = Deployment(**contracts)
        self.deployer = TxSender(
            self.rpc, load_wallet(Path(info["wallet_key_file"])), self.chain_id
        )


def test_devnet_provider_proves_a_stored_piece_on_chain(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    argv = [sys.executable, "-m", "gateway.cli", "devnet", "--nodes", "0", "--providers", "1"]
    argv += ["--dir", str(directory), "--epoch-seconds", "0.2", *FAST]
    with open(tmp_path / "devnet.stderr", "wb") as err:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL
        )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        chain = _Chain(info)
        data = bytes(range(256)) * 16 + b"tail"  # 4100 bytes: not a power of two
        asyncio.run(_store_on_node(info["foc_providers"][0], data))

        client = chain.deployer  # the devnet's funded client wallet
        deposit_with_permit(chain, client, 10 * USDFC)  # type: ignore[arg-type]
        provider = TxSender(
            chain.rpc, load_wallet(directory / "provider0" / "wallet.key"), chain.chain_id
        )
        set_id = create_set(chain, provider, create_extra(chain, provider.address, client))  # type: ignore[arg-type]
        cids = (bytes(piece_cid_v2(commp(data))),)
        add_pieces(chain, provider, set_id, cids, add_extra(chain, client, cids))  # type: ignore[arg-type]

        deadline = time.monotonic() + 90
        proven = 0
        while time.monotonic() < deadline and not proven:
            reply = chain.rpc.eth_call(
                chain.deployment.pdp_verifier, PDP.calldata("getDataSetLastProvenEpoch", set_id)
            )
            proven = PDP.decode("getDataSetLastProvenEpoch", reply)[0]
            time.sleep(0.2)
        assert proven > 0, (tmp_path / "devnet.stderr").read_text()[-2000:]
        assert "proven" in (tmp_path / "devnet.stderr").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert process.stdout is not None
        process.stdout.close()
