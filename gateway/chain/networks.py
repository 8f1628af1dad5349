"""Network presets: chain id, default public RPC URL and the FOC contract addresses, in one place.

Every address is the EIP-55 form published by FilOzone/synapse-sdk (npm ``@filoz/synapse-core``
0.5.2, identical at repository snapshot 1b8b54e8):

- FWSS, PDPVerifier, FilecoinPayV1, ServiceProviderRegistry, SessionKeyRegistry:
  ``packages/synapse-core/src/abis/generated.ts`` (``filecoinWarmStorageServiceAddress``,
  ``pdpVerifierAddress``, ``filecoinPayV1Address``, ``serviceProviderRegistryAddress``,
  ``sessionKeyRegistryAddress``, keyed by chain id);
- USDFC, Multicall3 and the default RPC URLs: ``packages/synapse-core/src/chains.ts``
  (``mainnet`` / ``calibration`` / ``devnet`` objects: ``contracts.usdfc``,
  ``contracts.multicall3``, ``rpcUrls.default.http[0]``).

The devnet has no fixed addresses: its contracts are deployed by ``depin-gateway devnet`` and come
from its first output line (synapse-core's devnet also lists zero addresses, "must be provided by
the devnet deployment"). Multicall3 has one address on every chain where it was deployed, but a
fresh anvil has none, so the devnet preset leaves it unset too.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import ConfigError

__all__ = ["NETWORKS", "Contracts", "Network", "get_network"]


@dataclass(frozen=True, slots=True)
class Contracts:
    """FOC contract addresses of one network (EIP-55); ``None`` = not deployed / not known yet."""

    fwss: str | None = None  # FilecoinWarmStorageService proxy: the EIP-712 verifyingContract
    pdp_verifier: str | None = None  # PDPVerifier (UUPS proxy)
    filecoin_pay: str | None = None  # FilecoinPayV1 (immutable)
    service_provider_registry: str | None = None  # ServiceProviderRegistry (UUPS proxy)
    session_key_registry: str | None = None  # SessionKeyRegistry (immutable)
    usdfc: str | None = None  # USDFC ERC-20 (18 decimals, EIP-2612 permit)
    multicall3: str | None = None


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    chain_id: int
    rpc_url: str
    contracts: Contracts
    native_symbol: str = "FIL"


# Deterministic-deployment address, identical on every EVM chain (chains.ts: all three presets).
_MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"

MAINNET = Network(
    name="mainnet",
    chain_id=314,  # chains.ts mainnet.id
    rpc_url="https://api.node.glif.io/rpc/v1",  # chains.ts mainnet.rpcUrls.default
    contracts=Contracts(
        fwss="0x8408502033C418E1bbC97cE9ac48E5528F371A9f",  # generated.ts, key 314
        pdp_verifier="0xBADd0B92C1c71d02E7d520f64c0876538fa2557F",  # generated.ts, key 314
        filecoin_pay="0x23b1e018F08BB982348b15a86ee926eEBf7F4DAa",  # generated.ts, key 314
        service_provider_registry="0xf55dDbf63F1b55c3F1D4FA7e339a68AB7b64A5eB",  # generated.ts
        session_key_registry="0x74FD50525A958aF5d484601E252271f9625231aB",  # generated.ts
        usdfc="0x80B98d3aa09ffff255c3ba4A241111Ff1262F045",  # chains.ts mainnet.contracts.usdfc
        multicall3=_MULTICALL3,
    ),
)

CALIBRATION = Network(
    name="calibration",
    chain_id=314159,  # chains.ts calibration.id
    rpc_url="https://api.calibration.node.glif.io/rpc/v1",  # chains.ts calibration.rpcUrls
    contracts=Contracts(
        fwss="0x02925630df557F957f70E112bA06e50965417CA0",  # generated.ts, key 314159
        pdp_verifier="0x85e366Cf9DD2c0aE37E963d9556F5f4718d6417C",  # generated.ts, key 314159
        filecoin_pay="0x09a0fDc2723fAd1A7b8e3e00eE5DF73841df55a0",  # generated.ts, key 314159
        service_provider_registry="0x839e5c9988e4e9977d40708d0094103c0839Ac9D",  # generated.ts
        session_key_registry="0x518411c2062E119Aaf7A8B12A2eDf9a939347655",  # generated.ts
        usdfc="0xb3042734b608a1B16e9e86B374A3f3e389B4cDf0",  # chains.ts calibration.contracts
        multicall3=_MULTICALL3,
    ),
    native_symbol="tFIL",  # chains.ts calibration.nativeCurrency.symbol
)

DEVNET = Network(
    name="devnet",
    chain_id=31415926,  # chains.ts devnet.id (also FilOzone/foc-devnet's Lotus devnet)
    # Differs from chains.ts (http://127.0.0.1:5700/rpc/v1, a Lotus node's path in foc-devnet):
    # our devnet is a local anvil, which serves JSON-RPC at the root of its port (8545 default).
    rpc_url="http://127.0.0.1:8545",
    contracts=Contracts(),  # deployed by `depin-gateway devnet`, no fixed addresses
)

NETWORKS: dict[str, Network] = {n.name: n for n in (MAINNET, CALIBRATION, DEVNET)}


def get_network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ConfigError(
            "chain.network", f"unknown network {name!r}", f"use one of {', '.join(NETWORKS)}"
        ) from None
