"""``depin-gateway wallet init|address|balance``: the secp256k1 wallet for FOC and FEVM.

Imports nothing from eth-account until a command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

__all__ = ["add_parser", "main"]

DEFAULT_CONFIG = Path("/etc/depin-gateway/gateway.toml")
DEFAULT_NETWORK = "calibration"  # a test network: a default must never touch real money
KEY_NAME = "wallet.key"


def add_parser(subparsers: Any) -> None:
    from gateway.chain.networks import NETWORKS
    from gateway.cli.checks import finite_positive

    text = "the secp256k1 wallet (FIL for gas, USDFC for Filecoin Pay): init, address, balance"
    p = subparsers.add_parser("wallet", help=text, description=text)
    p.add_argument("action", choices=["init", "address", "balance"])
    p.add_argument("--config", help=f"gateway config: the key is <state_dir>/{KEY_NAME}")
    p.add_argument("--key", help=f"wallet key file (default: <state_dir>/{KEY_NAME})")
    p.add_argument(
        "--network", choices=sorted(NETWORKS), help=f"network preset (default {DEFAULT_NETWORK})"
    )
    p.add_argument("--rpc", help="JSON-RPC URL (default: the network preset's public RPC)")
    p.add_argument("--usdfc", help="USDFC token address (default: the preset's; devnet has none)")
    p.add_argument("--timeout", type=finite_positive, default=10.0, help="seconds per RPC request")
    p.set_defaults(handler=main)


def _key_path(args: argparse.Namespace) -> Path:
    if args.key is not None:
        from gateway.cli.checks import out_file

        # A directory, a missing parent or a NUL is one line naming --key, not an OSError.
        return out_file("--key", args.key)
    config = Path(args.config) if args.config else DEFAULT_CONFIG
    if not config.exists():
        raise ConfigError(
            "wallet", f"no --key given and no config at {config}", "pass --key FILE or --config"
        )
    from gateway.config import load_config

    return load_config(config).state_dir / KEY_NAME


def main(args: argparse.Namespace) -> int:
    path = _key_path(args)
    if args.action == "init":
        from gateway.keys.wallet import create_wallet

        wallet = create_wallet(path)
        print(f"created wallet {path} (mode 0600; back it up: it holds your FIL and USDFC)")
        print(wallet.address)
        return 0
    from gateway.keys.wallet import load_wallet

    wallet = load_wallet(path)
    if args.action == "address":
        print(wallet.address)
        return 0
    return _balance(args, wallet.address)


def _balance(args: argparse.Namespace, address: str) -> int:
    from gateway.chain.address import parse_address
    from gateway.chain.balance import format_amount, read_balances
    from gateway.chain.jsonrpc import RpcClient
    from gateway.chain.networks import get_network

    network = get_network(args.network or DEFAULT_NETWORK)
    if args.timeout <= 0:
        raise ConfigError("wallet", "--timeout must be > 0", "e.g. --timeout 10")
    usdfc = parse_address(args.usdfc, "--usdfc") if args.usdfc else network.contracts.usdfc
    client = RpcClient(args.rpc or network.rpc_url, timeout=args.timeout)
    balances = read_balances(client, network, address, usdfc)
    print(f"network  {network.name} (chain {network.chain_id}) via {client.url}")
    print(f"address  {address}")
    print(f"FIL      {format_amount(balances.fil)} {network.native_symbol}")
    if balances.usdfc is None:
        print(f"USDFC    - (no USDFC contract known on {network.name}; pass --usdfc ADDRESS)")
    else:
        print(f"USDFC    {format_amount(balances.usdfc)} USDFC (token {balances.usdfc_token})")
    if balances.fil == 0:
        print("note     no FIL: this wallet cannot pay gas yet", file=sys.stderr)
    return 0
