"""``[chain]`` and ``[foc]``: each a function from its TOML table to its value, or ``None`` when
the section is absent (then nothing of the chain stack is imported or needed)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gateway.config.chainmodel import (
    NETWORK_NAMES,
    ChainConfig,
    ContractOverrides,
    FocConfig,
    ProviderPin,
)
from gateway.config.checks import check_path, parse_http_url
from gateway.config.table import Table
from gateway.errors import ConfigError

__all__ = ["chain_section", "foc_section", "parse_usdfc"]

_CONTRACTS = (
    "fwss",
    "pdp_verifier",
    "filecoin_pay",
    "service_provider_registry",
    "session_key_registry",
    "usdfc",
)
_CHAIN_KEYS = (
    "network",
    "rpc_url",
    "chain_id",
    "wallet",
    "confirmations",
    "max_fee",
    "max_priority_fee",
    "rpc_timeout",
    "receipt_timeout",
    *_CONTRACTS,
)
_FOC_KEYS = (
    "providers",
    "copies",
    "max_price_per_tib_month",
    "budget",
    "deposit_topup_below",
    "deposit_topup_amount",
    "with_cdn",
    "keep_window",
    "poll_interval",
    "request_timeout",
    "repair_after",
    "upload_flow",
)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_GWEI = 10**9
_USDFC = Decimal(10**18)
_MAX_USDFC = 10**12  # a trillion USDFC: anything above is a typo


def _address(t: Table, name: str) -> str | None:
    value = t.optional_string(name)
    if value is not None and not _ADDRESS.fullmatch(value):
        raise ConfigError(t.key(name), f"{value[:50]!r} is not an address", 'e.g. "0x02925630..."')
    return value


def chain_section(root: Table, state_dir: Path, base: Path) -> ChainConfig | None:
    if "chain" not in root.data:
        return None
    t = root.table("chain", _CHAIN_KEYS)
    network = t.string("network", "calibration")
    if network not in NETWORK_NAMES:
        raise ConfigError(
            t.key("network"),
            f"unknown network {network!r}",
            f"use one of {', '.join(NETWORK_NAMES)}",
        )
    rpc_url = t.optional_string("rpc_url")
    wallet = t.optional_string("wallet")
    chain_id = t.integer("chain_id", 0, 0, 2**53) if "chain_id" in t.data else None
    if chain_id == 0:
        raise ConfigError(t.key("chain_id"), "0 is not a chain id", "e.g. 314159 (calibration)")
    return ChainConfig(
        network=network,
        rpc_url=parse_http_url(t.key("rpc_url"), rpc_url) if rpc_url is not None else None,
        chain_id=chain_id,
        wallet=check_path(t.key("wallet"), wallet, base) if wallet else state_dir / "wallet.key",
        contracts=ContractOverrides(**{name: _address(t, name) for name in _CONTRACTS}),
        # Filecoin finality is 900 epochs (DESIGN section 11); more than that is a typo.
        confirmations=t.integer("confirmations", 5, 0, 900),
        max_fee=t.integer("max_fee", 10 * _GWEI, 1, 10**6 * _GWEI),
        max_priority_fee=t.integer("max_priority_fee", 2 * _GWEI, 0, 10**6 * _GWEI),
        rpc_timeout=t.duration("rpc_timeout", "10s", minimum=0.1, maximum=600),
        receipt_timeout=t.duration("receipt_timeout", "10m", minimum=1, maximum=86400),
    )


def parse_usdfc(key: str, value: object) -> int:
    """``"2.5"`` (a decimal string, USDFC) or an integer of USDFC -> base units (10^-18)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(key, "expected an amount of USDFC", 'e.g. "2.5" or 10')
    try:
        amount = Decimal(value) * _USDFC
    except InvalidOperation:
        raise ConfigError(key, f"{str(value)[:40]!r} is not a number", 'e.g. "2.5"') from None
    if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value():
        raise ConfigError(
            key, f"{value!r} is not a non-negative amount with <= 18 decimals", 'e.g. "2.5"'
        )
    if amount > _MAX_USDFC * _USDFC:
        raise ConfigError(key, f"{value!r} is out of range", f"use at most {_MAX_USDFC} USDFC")
    return int(amount)


def _pin(key: str, text: str) -> ProviderPin:
    if text.isdecimal():
        provider_id = int(text)
        if not 1 <= provider_id < 2**63:
            raise ConfigError(key, f"{text} is not a provider id", "ids start at 1")
        return ProviderPin(provider_id=provider_id)
    return ProviderPin(url=parse_http_url(key, text))


def _usdfc(t: Table, name: str, default: str) -> int:
    return parse_usdfc(t.key(name), t.data.get(name, default))


def foc_section(root: Table) -> FocConfig | None:
    if "foc" not in root.data:
        return None
    t = root.table("foc", _FOC_KEYS)
    pins = tuple(
        _pin(f"{t.key('providers')}[{i}]", text)
        for i, text in enumerate(t.strings("providers", (), max_items=64))
    )
    copies = t.integer("copies", 2, 1, 16)
    if pins and len(pins) < copies:
        raise ConfigError(
            t.key("copies"),
            f"{copies} copies but {len(pins)} pinned providers",
            "pin more providers or lower foc.copies",
        )
    return FocConfig(
        providers=pins,
        copies=copies,
        # FWSS lists 2.5 USDFC/TiB/month (FOC.md 1.1, PriceListUSDFC.sol): the default allows 2x.
        max_price_per_tib_month=_usdfc(t, "max_price_per_tib_month", "5"),
        budget=_usdfc(t, "budget", "10"),
        deposit_topup_below=_usdfc(t, "deposit_topup_below", "1"),
        deposit_topup_amount=_usdfc(t, "deposit_topup_amount", "0"),
        with_cdn=t.boolean("with_cdn", False),
        # Curio deletes unclaimed uploads after PDPUnclaimedUploadKeepHours, minimum 2 h.
        keep_window=t.duration("keep_window", "2h", minimum=600, maximum=7 * 86400),
        poll_interval=t.duration("poll_interval", "4s", minimum=0.05, maximum=600),
        request_timeout=t.duration("request_timeout", "30s", minimum=0.1, maximum=3600),
        repair_after=t.integer("repair_after", 2, 1, 100),
        upload_flow=_flow(t),
    )


def _flow(t: Table) -> str:
    flow = t.string("upload_flow", "standard")
    if flow not in ("standard", "streaming"):
        raise ConfigError(
            t.key("upload_flow"),
            f"unknown flow {flow[:30]!r}",
            '"standard" (POST /pdp/piece) or "streaming" (POST /pdp/piece/uploads)',
        )
    return flow
