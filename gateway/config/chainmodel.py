"""The ``[chain]`` and ``[foc]`` config values (frozen; validated by ``chain_sections``).

Amounts are integers in the token's base unit: attoFIL for fees, 10^-18 USDFC for prices and
budgets (USDFC has 18 decimals, like FIL). Nothing here imports ``gateway.chain``: a gateway
without these sections never loads the chain code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["NETWORK_NAMES", "ChainConfig", "ContractOverrides", "FocConfig", "ProviderPin"]

NETWORK_NAMES = ("mainnet", "calibration", "devnet")  # gateway.chain.networks.NETWORKS


@dataclass(frozen=True, slots=True)
class ContractOverrides:
    """Addresses that replace the network preset's (the devnet has no preset addresses)."""

    fwss: str | None = None
    pdp_verifier: str | None = None
    filecoin_pay: str | None = None
    service_provider_registry: str | None = None
    session_key_registry: str | None = None
    usdfc: str | None = None


@dataclass(frozen=True, slots=True)
class ChainConfig:
    network: str
    rpc_url: str | None  # None: the preset's public RPC
    chain_id: int | None  # None: the preset's; a node answering another id stops spending
    wallet: Path  # secp256k1 key file (mode 0600)
    contracts: ContractOverrides
    confirmations: int  # blocks on top of a receipt before it counts
    max_fee: int  # EIP-1559 maxFeePerGas cap, attoFIL per gas
    max_priority_fee: int  # EIP-1559 maxPriorityFeePerGas cap, attoFIL per gas
    rpc_timeout: float
    receipt_timeout: float  # seconds a sent transaction may stay unmined before it is re-checked


@dataclass(frozen=True, slots=True)
class ProviderPin:
    """A provider named in config: a registry id or a service URL."""

    provider_id: int | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class FocConfig:
    providers: tuple[ProviderPin, ...]  # empty: choose from the registry by the rules below
    copies: int  # providers each piece goes to (distinct data sets)
    max_price_per_tib_month: int  # USDFC base units; providers asking more are skipped
    budget: int  # USDFC base units the gateway may ever commit: never exceeded
    deposit_topup_below: int  # top up Filecoin Pay when available funds fall below this
    deposit_topup_amount: int  # ... by this much (0: never top up automatically)
    with_cdn: bool  # data-set metadata withCDN (FilBeam)
    keep_window: float  # seconds a provider keeps an unclaimed upload (Curio: 2 h)
    poll_interval: float  # seconds between polls of a provider's transaction status
    request_timeout: float  # every HTTP request to a provider
    repair_after: int  # proving periods without a proof before a piece is re-placed
    upload_flow: str = "standard"  # "standard" (POST /pdp/piece) or "streaming" (/uploads)
