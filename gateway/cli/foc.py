"""``depin-gateway foc fund AMOUNT|status|providers``: Filecoin Onchain Cloud from the CLI.

``providers`` reads the ServiceProviderRegistry of a network (``--network calibration`` reads
the real one) and says for each provider whether this gateway would use it and why not;
``fund`` deposits USDFC into Filecoin Pay with FWSS approved as operator (journaled: a repeated
command after a crash resumes the unfinished deposit, it never pays twice); ``status`` reads
the FOC journal of a state directory (it never writes there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

__all__ = ["add_parser", "main"]

DEFAULT_CONFIG = Path("/etc/depin-gateway/gateway.toml")


def add_parser(subparsers: Any) -> None:
    from gateway.chain.networks import NETWORKS

    text = "Filecoin Onchain Cloud: fund Filecoin Pay, FOC status, registry providers"
    p = subparsers.add_parser("foc", help=text, description=text)
    p.add_argument("action", choices=["fund", "status", "providers"])
    p.add_argument("amount", nargs="?", help="fund: USDFC to deposit, e.g. 5 or 2.5")
    p.add_argument("--config", help=f"gateway config (default {DEFAULT_CONFIG})")
    p.add_argument("--network", choices=sorted(NETWORKS), help="providers: a preset, no config")
    p.add_argument("--rpc", help="providers: JSON-RPC URL (default: the preset's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=main)


def _config(args: argparse.Namespace) -> Any:
    from gateway.config import load_config

    path = Path(args.config) if args.config else DEFAULT_CONFIG
    if not path.exists():
        raise ConfigError("foc", f"no config at {path}", "pass --config FILE")
    config = load_config(path)
    if config.chain is None:
        raise ConfigError("chain", "foc needs a [chain] section", 'add [chain] network = "..."')
    return config


def _usdfc(value: int) -> str:
    from gateway.chain.balance import format_amount

    return format_amount(value)


def _providers(args: argparse.Namespace) -> int:
    from gateway.chain.jsonrpc import RpcClient
    from gateway.chain.networks import get_network
    from gateway.foc.registry import eligible, read_providers

    if args.network or not (args.config or DEFAULT_CONFIG.exists()):
        network = get_network(args.network or "calibration")
        c = network.contracts
        if not c.service_provider_registry:
            raise ConfigError(
                "--network",
                f"{network.name} has no preset registry address",
                "use --config with the [chain] lines `depin-gateway devnet` prints",
            )
        rpc = RpcClient(args.rpc or network.rpc_url)
        rpc.check_chain_id(network.chain_id)
        registry, fwss, usdfc, pins, cap = c.service_provider_registry, c.fwss, c.usdfc, (), 2**255
    else:
        from gateway.foc.backend import addresses_of

        config = _config(args)
        a, chain_id, url = addresses_of(config)
        rpc = RpcClient(args.rpc or url)
        rpc.check_chain_id(chain_id)
        registry, fwss, usdfc = a.service_provider_registry, a.fwss, a.usdfc
        pins = config.foc.providers if config.foc else ()
        cap = config.foc.max_price_per_tib_month if config.foc else 2**255
    if not registry or not fwss:
        raise ConfigError(
            "--network",
            "this network has no preset registry/FWSS addresses",
            "use --config with the [chain] lines `depin-gateway devnet` prints",
        )
    rows = eligible(read_providers(rpc, registry, fwss), pins=pins, max_price=cap, usdfc=usdfc)
    if args.json:
        print(json.dumps([{n: getattr(p, n) for n in p.__slots__} for p in rows], indent=1))
        return 0
    print(f"{len(rows)} PDP providers in the registry at {registry} via {rpc.url}")
    for p in rows:
        price = _usdfc(p.price_per_tib_month)
        verdict = "usable" if not p.reason else f"skipped: {p.reason}"
        print(
            f"{p.provider_id:>5}  {p.name[:20]:<20} {price:>10} USDFC/TiB/month  "
            f"{p.service_url}  {verdict}"
        )
    return 0


def _fund(args: argparse.Namespace) -> int:
    from gateway.chain.journal import Journal
    from gateway.chain.jsonrpc import RpcClient
    from gateway.chain.sending import ChainSender, FeePolicy
    from gateway.config.chain_sections import parse_usdfc
    from gateway.foc.backend import addresses_of, foc_paths
    from gateway.foc.funding import fund
    from gateway.keys.wallet import load_wallet

    if args.amount is None:
        raise ConfigError("foc fund", "no AMOUNT given", "e.g. depin-gateway foc fund 5")
    amount = parse_usdfc("AMOUNT", args.amount)
    config = _config(args)
    chain = config.chain
    a, chain_id, url = addresses_of(config)
    fees = FeePolicy(
        chain.max_fee, chain.max_priority_fee, chain.confirmations, chain.receipt_timeout
    )
    journal = Journal(foc_paths(config.state_dir)[1])
    sender = ChainSender(
        RpcClient(url, timeout=chain.rpc_timeout),
        load_wallet(chain.wallet),
        chain_id,
        journal,
        fees,
    )
    result = fund(sender, a, amount)
    verb = "resumed unfinished" if result.resumed else "sent"
    print(
        f"{verb} {result.key}: {_usdfc(result.amount)} USDFC into Filecoin Pay "
        f"{a.filecoin_pay} (operator FWSS {a.fwss})"
    )
    print(f"transaction {result.outcome.tx_hash}: {result.outcome.state}")
    return 0 if result.outcome.ok else 1


def _status(args: argparse.Namespace) -> int:
    from gateway.chain.journal import Journal
    from gateway.foc.backend import foc_paths
    from gateway.foc.status import JournalView, provider_stats

    config = _config(args)
    foc_journal, tx_journal = foc_paths(config.state_dir)
    rows = provider_stats(JournalView(Journal(foc_journal)))
    pending = [
        k
        for k, r in Journal(tx_journal).items("tx/")
        if r["state"] not in ("confirmed", "reverted", "dropped")
    ]
    if args.json:
        print(json.dumps({"providers": rows, "pending_transactions": pending}, indent=1))
        return 0
    for row in rows:
        print(
            f"provider {row['provider_id']}: data set {row['data_set_id']} "
            f"({row['data_set_state']}), {row['pieces']} pieces, {row['proven']} proven, "
            f"{row['failed']} failed, USDFC committed {_usdfc(int(row['usdfc_committed']))}, "
            f"spent ~{_usdfc(int(row['usdfc_spent_estimate']))}"
        )
    if not rows:
        print("no FOC pieces yet")
    for key in pending:
        print(f"pending transaction: {key}")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.action == "providers":
        return _providers(args)
    if args.action == "fund":
        return _fund(args)
    return _status(args)
