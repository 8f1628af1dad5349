"""A FOC stand-in chain for tests and the devnet: anvil, our contracts, and funded wallets.

Keys are anvil's published dev keys (mnemonic "test test ... junk"), so nothing secret is made up
here: the deployer is account 0; clients and providers get fresh keys from an injected source.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.chain.abi import abi_of
from gateway.chain.deploy import Deployment, ProvingConfig, deploy_foc, fund
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.keccak import keccak256
from gateway.chain.tx import TxSender
from gateway.keys.wallet import Wallet, wallet_from_secret

__all__ = ["ANVIL_KEY_0", "FIL", "USDFC", "FocChain", "deposit_with_permit", "start_foc_chain"]

# anvil dev account 0 (0xf39F...2266): printed by anvil at every start, public by design.
ANVIL_KEY_0 = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
FIL = 10**18
USDFC = 10**18
_MAX_UINT256 = 2**256 - 1
DEFAULT_PROVING = ProvingConfig()


@dataclass(frozen=True)
class FocChain:
    rpc: RpcClient
    chain_id: int
    deployment: Deployment
    deployer: TxSender
    proving: ProvingConfig

    def sender(self, wallet: Wallet) -> TxSender:
        return TxSender(self.rpc, wallet, self.chain_id)

    def new_wallet(
        self,
        fil: int = 10 * FIL,
        usdfc: int = 0,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> TxSender:
        sender = self.sender(wallet_from_secret(token_bytes(32)))
        fund(self.deployer, self.deployment, sender.address, fil, usdfc)
        return sender


def start_foc_chain(
    rpc_url: str, chain_id: int, proving: ProvingConfig = DEFAULT_PROVING
) -> FocChain:
    rpc = RpcClient(rpc_url, attempts=1)
    deployer = TxSender(rpc, wallet_from_secret(ANVIL_KEY_0), chain_id)
    return FocChain(rpc, chain_id, deploy_foc(deployer, proving), deployer, proving)


def permit_digest(
    chain: FocChain, owner: str, spender: str, value: int, nonce: int, deadline: int
) -> bytes:
    from eth_abi.abi import encode

    usdfc = abi_of("MockUSDFC")
    separator = usdfc.decode(
        "DOMAIN_SEPARATOR",
        chain.deployer.call(chain.deployment.usdfc, usdfc.calldata("DOMAIN_SEPARATOR")),
    )[0]
    typehash = keccak256(
        b"Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
    )
    struct = keccak256(
        encode(
            ["bytes32", "address", "address", "uint256", "uint256", "uint256"],
            [typehash, owner, spender, value, nonce, deadline],
        )
    )
    return keccak256(b"\x19\x01" + separator + struct)


def deposit_with_permit(
    chain: FocChain,
    client: TxSender,
    amount: int,
    *,
    signer: TxSender | None = None,
    deadline: int | None = None,
    max_lockup_period: int = 2880 * 30,
    operator: str | None = None,
) -> None:
    """What synapse-core's depositWithPermitAndApproveOperator does: an EIP-2612 permit for
    Filecoin Pay, then deposit and approve FWSS as operator with unlimited allowances."""
    usdfc = abi_of("MockUSDFC")
    nonce_reply = client.call(chain.deployment.usdfc, usdfc.calldata("nonces", client.address))
    nonce = usdfc.decode("nonces", nonce_reply)[0]
    deadline = int(time.time()) + 3600 if deadline is None else deadline
    digest = permit_digest(
        chain, client.address, chain.deployment.filecoin_pay, amount, nonce, deadline
    )
    v, r, s = (signer or client).wallet.sign_digest(digest)
    data = abi_of("FilecoinPay").calldata(
        "depositWithPermitAndApproveOperator",
        chain.deployment.usdfc,
        client.address,
        amount,
        deadline,
        v,
        r,
        s,
        operator or chain.deployment.fwss,
        _MAX_UINT256,
        _MAX_UINT256,
        max_lockup_period,
    )
    client.send(chain.deployment.filecoin_pay, data, what="depositWithPermitAndApproveOperator")
