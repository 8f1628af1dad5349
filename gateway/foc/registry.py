"""FOC providers from the ServiceProviderRegistry (``eth_call`` only), filtered for use.

A provider is kept when: it is active with a PDP product, FWSS approves it (``isProviderApproved``),
its PDP ``paymentTokenAddress`` is USDFC (or unset), its price per TiB per month is under our
cap, the piece size fits its min/max, and our reputation of it is not below the floor. Config
pins (ids or service URLs) narrow the set; a pinned provider that fails a filter is reported,
not silently replaced. Capability values are decoded as synapse-core's ``decodePDPCapabilities``
reads them: ``serviceURL``/``location`` UTF-8, numbers big-endian, the token 20 address bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.chain.abi import abi_of
from gateway.chain.jsonrpc import RpcClient
from gateway.config.chainmodel import ProviderPin
from gateway.errors import ChainError

__all__ = ["DAYS_PER_MONTH", "FocProvider", "eligible", "read_providers"]

PDP_PRODUCT = 0
DAYS_PER_MONTH = 30  # FWSS prices a month as 30 days (PriceListUSDFC.sol, 2880 epochs a day)
_PAGE = 50


@dataclass(frozen=True, slots=True)
class FocProvider:
    provider_id: int
    address: str  # the service provider (sends createDataSet / addPieces)
    payee: str
    name: str
    service_url: str
    approved: bool
    active: bool
    price_per_tib_month: int  # USDFC base units (registry: per TiB per day x 30)
    min_piece_size: int
    max_piece_size: int
    payment_token: str | None
    location: str = ""
    reason: str = ""  # why it is not eligible ("" = eligible)

    def __post_init__(self) -> None:
        if self.provider_id <= 0 or not self.service_url:
            raise ValueError("a provider needs an id and a service URL")


def _number(raw: bytes) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def _provider(entry: Any, approved: bool) -> FocProvider | None:
    provider_id, info, product, values = entry
    service_provider, payee, name, _description, active = info
    _kind, keys, product_active = product
    caps = dict(zip(keys, (bytes(v) for v in values), strict=True))
    url = caps.get("serviceURL", b"").decode("utf-8", "replace").rstrip("/")
    if not url.startswith(("http://", "https://")):
        return None  # nothing to talk to
    token = caps.get("paymentTokenAddress", b"")
    return FocProvider(
        provider_id=int(provider_id),
        address=str(service_provider),
        payee=str(payee),
        name=str(name)[:64],
        service_url=url,
        approved=approved,
        active=bool(active) and bool(product_active),
        price_per_tib_month=_number(caps.get("storagePricePerTibPerDay", b"")) * DAYS_PER_MONTH,
        min_piece_size=_number(caps.get("minPieceSizeInBytes", b"")),
        max_piece_size=_number(caps.get("maxPieceSizeInBytes", b"")),
        payment_token="0x" + token.hex() if len(token) == 20 else None,
        location=caps.get("location", b"").decode("utf-8", "replace")[:64],
    )


def read_providers(rpc: RpcClient, registry: str, fwss: str) -> list[FocProvider]:
    """Every PDP provider the registry lists, with FWSS approval (paged ``eth_call``)."""
    reg, warm = abi_of("ServiceProviderRegistry"), abi_of("FilecoinWarmStorageService")
    found: list[FocProvider] = []
    offset = 0
    while True:
        data = reg.calldata("getProvidersByProductType", PDP_PRODUCT, True, offset, _PAGE)
        (page,) = reg.decode("getProvidersByProductType", rpc.eth_call(registry, data))
        entries, has_more = page
        for entry in entries:
            call = warm.calldata("isProviderApproved", int(entry[0]))
            approved = bool(warm.decode("isProviderApproved", rpc.eth_call(fwss, call))[0])
            provider = _provider(entry, approved)
            if provider is not None:
                found.append(provider)
        offset += _PAGE
        if not has_more or not entries:
            return found
        if offset > 100_000:
            raise ChainError(rpc.url, "provider registry pages do not end")


def _why_not(p: FocProvider, max_price: int, usdfc: str | None, size: int, score: float) -> str:
    if not p.active:
        return "inactive"
    if not p.approved:
        return "not approved by FWSS"
    if p.payment_token and usdfc and p.payment_token.lower() != usdfc.lower():
        return "paid in another token"
    if p.price_per_tib_month > max_price:
        return f"price {p.price_per_tib_month} > cap {max_price} per TiB/month"
    if size and not p.min_piece_size <= size <= (p.max_piece_size or size):
        return f"piece size {size} outside {p.min_piece_size}..{p.max_piece_size}"
    if score < 0.0:
        return "reputation too low"
    return ""


def _pinned(p: FocProvider, pins: Sequence[ProviderPin]) -> bool:
    return any(
        pin.provider_id == p.provider_id or (pin.url and pin.url.rstrip("/") == p.service_url)
        for pin in pins
    )


def eligible(
    providers: Sequence[FocProvider],
    *,
    pins: Sequence[ProviderPin],
    max_price: int,
    usdfc: str | None,
    piece_size: int = 0,
    score: Callable[[FocProvider], float] = lambda _: 1.0,
) -> list[FocProvider]:
    """Every provider with its ``reason`` filled in; eligible ones first, best score first."""
    out = []
    for p in providers:
        if pins and not _pinned(p, pins):
            reason = "not pinned in [foc] providers"
        else:
            reason = _why_not(p, max_price, usdfc, piece_size, score(p))
        out.append(FocProvider(**{**_fields(p), "reason": reason}))
    return sorted(out, key=lambda p: (bool(p.reason), -score(p), p.price_per_tib_month))


def _fields(p: FocProvider) -> dict[str, Any]:
    return {name: getattr(p, name) for name in FocProvider.__slots__}
