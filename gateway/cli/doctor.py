"""``depin-gateway doctor``: check a gateway's setup; one line per check, the fix with each FAIL."""

from __future__ import annotations

import argparse
import sys

from gateway.config import load_config
from gateway.config.checks import parse_http_url
from gateway.errors import ConfigError

__all__ = ["add_doctor_arguments", "cmd_doctor"]


def add_doctor_arguments(p: argparse.ArgumentParser) -> None:
    from gateway.cli.doctor_checks import CHECK_NAMES

    p.add_argument("--user", help="the service user (default depin-gateway, else you)")
    p.add_argument("--rpc", help="chain JSON-RPC URL: check it, and the wallet's FIL balance")
    p.add_argument("--skip", action="append", default=[], metavar="CHECK",
                   help=f"skip a check (repeatable): {', '.join(CHECK_NAMES)}")  # fmt: skip


def cmd_doctor(args: argparse.Namespace) -> int:
    from gateway.cli.doctor_checks import CHECK_NAMES, service_user
    from gateway.cli.doctor_net import run_doctor

    for name in args.skip:
        if name not in CHECK_NAMES:
            raise ConfigError("--skip", f"unknown check {name[:40]!r}", ", ".join(CHECK_NAMES))
    rpc = parse_http_url("--rpc", args.rpc) if args.rpc else None
    config = load_config(args.config)
    return run_doctor(config, service_user(args.user), sys.stdout, skip=args.skip, rpc=rpc)
