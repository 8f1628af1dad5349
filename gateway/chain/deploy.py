"""Deploy the FOC stand-ins from the committed artifacts onto a local chain (anvil), install the
beacon mock at the FVM precompile address and Multicall3 at its usual address, fund wallets,
register and approve providers.

Order matters only where a constructor takes another contract's address: USDFC, Filecoin Pay,
the provider registry and the PDP verifier first, then FWSS, which names all four. The beacon and
Multicall3 are runtime code placed with ``anvil_setCode`` (no constructor, no deployer).
No FVM pay/burn precompile mock is installed: none of our contracts burns fees (see each one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gateway.chain.abi import abi_of, load_artifact
from gateway.chain.jsonrpc import RpcClient
from gateway.chain.tx import Receipt, TxSender

__all__ = [
    "BEACON_ADDRESS",
    "Deployment",
    "PdpOffering",
    "ProvingConfig",
    "approve_provider",
    "deploy_foc",
    "fund",
    "install_runtime",
    "register_provider",
]

BEACON_ADDRESS = "0xfE00000000000000000000000000000000000006"  # FVM GET_BEACON_RANDOMNESS
# Multicall3's address on every chain it is deployed to (synapse-core chains.ts, all presets).
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"
PDP_PRODUCT = 0  # ServiceProviderRegistry ProductType.PDP


@dataclass(frozen=True, slots=True)
class ProvingConfig:
    """PDP timing in epochs; FilOzone's devnet deploy uses finality 5, period 120, window 10."""

    challenge_finality: int = 5
    max_proving_period: int = 30
    challenge_window: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.challenge_window < self.max_proving_period:
            raise ValueError("need 0 < challenge_window < max_proving_period")
        if self.challenge_finality < 1:
            raise ValueError("challenge_finality must be at least 1 epoch")


@dataclass(frozen=True, slots=True)
class Deployment:
    usdfc: str
    filecoin_pay: str
    service_provider_registry: str
    pdp_verifier: str
    fwss: str
    beacon: str
    multicall3: str = MULTICALL3_ADDRESS
    gas: tuple[tuple[str, int], ...] = ()  # (what, gas used) per deployment transaction

    def addresses(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if k != "gas"}


def _deploy(sender: TxSender, name: str, *args: Any) -> Receipt:
    artifact = load_artifact(name)
    code = bytes.fromhex(artifact["bytecode"][2:]) + abi_of(name).constructor_args(*args)
    return sender.deploy(code, name)


def install_runtime(rpc: RpcClient, name: str, address: str) -> None:
    """Place a contract's runtime code at a fixed address (a precompile, Multicall3)."""
    rpc.call("anvil_setCode", [address, load_artifact(name)["deployedBytecode"]])


def deploy_foc(sender: TxSender, proving: ProvingConfig | None = None) -> Deployment:
    """Every stand-in, deployed by ``sender`` (FWSS's owner: it approves providers)."""
    proving = proving or ProvingConfig()
    receipts: dict[str, Receipt] = {}
    for name, args in (
        ("MockUSDFC", ()),
        ("FilecoinPay", ()),
        ("ServiceProviderRegistry", ()),
        ("PDPVerifier", (proving.challenge_finality,)),
    ):
        receipts[name] = _deploy(sender, name, *args)
    address = {name: r.contract_address or "" for name, r in receipts.items()}
    receipts["FilecoinWarmStorageService"] = _deploy(
        sender,
        "FilecoinWarmStorageService",
        address["PDPVerifier"],
        address["FilecoinPay"],
        address["MockUSDFC"],
        address["ServiceProviderRegistry"],
        proving.max_proving_period,
        proving.challenge_window,
    )
    install_runtime(sender.rpc, "MockBeacon", BEACON_ADDRESS)
    install_runtime(sender.rpc, "Multicall3", MULTICALL3_ADDRESS)
    return Deployment(
        usdfc=address["MockUSDFC"],
        filecoin_pay=address["FilecoinPay"],
        service_provider_registry=address["ServiceProviderRegistry"],
        pdp_verifier=address["PDPVerifier"],
        fwss=receipts["FilecoinWarmStorageService"].contract_address or "",
        beacon=BEACON_ADDRESS,
        gas=tuple((name, r.gas_used) for name, r in receipts.items()),
    )


def fund(sender: TxSender, deployment: Deployment, address: str, fil: int, usdfc: int) -> None:
    """Give ``address`` FIL (anvil_setBalance, in attoFIL) and USDFC (minted by the deployer)."""
    sender.rpc.call("anvil_setBalance", [address, hex(fil)])
    if usdfc:
        data = abi_of("MockUSDFC").calldata("mint", address, usdfc)
        sender.send(deployment.usdfc, data, what="USDFC mint")


@dataclass(frozen=True, slots=True)
class PdpOffering:
    """The PDP product capabilities a provider registers (synapse-core PDP_OFFERING_KEYS)."""

    service_url: str
    min_piece_size: int = 127
    max_piece_size: int = 1_065_353_216
    storage_price_per_tib_per_day: int = 2_500_000_000_000_000_000 // 30
    min_proving_period: int = 30
    location: str = "devnet/loopback"
    payment_token: str = ""

    def capabilities(self) -> tuple[list[str], list[bytes]]:
        """Keys and values encoded as synapse-core's encodePDPCapabilities does: strings as
        UTF-8, numbers as minimal big-endian bytes, the token as its 20 address bytes."""

        def number(value: int) -> bytes:
            return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")

        pairs = [
            ("serviceURL", self.service_url.encode()),
            ("minPieceSizeInBytes", number(self.min_piece_size)),
            ("maxPieceSizeInBytes", number(self.max_piece_size)),
            ("storagePricePerTibPerDay", number(self.storage_price_per_tib_per_day)),
            ("minProvingPeriodInEpochs", number(self.min_proving_period)),
            ("location", self.location.encode()),
            ("paymentTokenAddress", bytes.fromhex(self.payment_token[2:])),
        ]
        return [k for k, _ in pairs], [v for _, v in pairs]


def register_provider(
    provider: TxSender, deployment: Deployment, name: str, offering: PdpOffering
) -> int:
    """Register ``provider``'s address (payee = itself) with a PDP product; its provider id."""
    registry = abi_of("ServiceProviderRegistry")
    keys, values = offering.capabilities()
    data = registry.calldata(
        "registerProvider", provider.address, name, "depin-gateway node", PDP_PRODUCT, keys, values
    )
    provider.send(deployment.service_provider_registry, data, what="registerProvider")
    reply = provider.call(
        deployment.service_provider_registry,
        registry.calldata("getProviderIdByAddress", provider.address),
    )
    provider_id: int = registry.decode("getProviderIdByAddress", reply)[0]
    return provider_id


def approve_provider(owner: TxSender, deployment: Deployment, provider_id: int) -> None:
    data = abi_of("FilecoinWarmStorageService").calldata("addApprovedProvider", provider_id)
    owner.send(deployment.fwss, data, what="addApprovedProvider")
