"""``depin-gateway devnet [--nodes N] [--providers N] [--dir DIR]``: argv to a running devnet."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["add_parser", "main"]


def add_parser(subparsers: Any) -> None:
    text = "a local chain with the FOC stand-ins, storage nodes and FOC providers (until SIGTERM)"
    p = subparsers.add_parser("devnet", help=text, description=text)
    p.add_argument("--nodes", type=int, default=2, help="market storage nodes (default 2)")
    p.add_argument("--providers", type=int, default=2, help="FOC providers (default 2)")
    p.add_argument("--dir", help="where keys, logs and node data go (default: a new temp dir)")
    p.add_argument("--epoch-seconds", type=float, default=1.0, help="seconds per mined epoch")
    # Tests shorten the proving cadence; FilOzone's devnet uses finality 5, window 10.
    p.add_argument("--proving-period", type=int, default=30, help=argparse.SUPPRESS)
    p.add_argument("--challenge-window", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--challenge-finality", type=int, default=5, help=argparse.SUPPRESS)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from gateway.chain.deploy import ProvingConfig
    from gateway.errors import ConfigError
    from gateway.testing.devnet import Devnet

    if not 0 <= args.nodes <= 16 or not 0 <= args.providers <= 16:
        raise ConfigError("--nodes/--providers", "must be 0..16", "a devnet runs on one machine")
    if args.epoch_seconds <= 0:
        raise ConfigError("--epoch-seconds", "must be positive", "e.g. --epoch-seconds 1")
    try:
        proving = ProvingConfig(args.challenge_finality, args.proving_period, args.challenge_window)
    except ValueError as exc:
        raise ConfigError("--proving-period", str(exc), "e.g. --proving-period 30") from None
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="depin-devnet-"))
    devnet = Devnet(
        directory,
        nodes=args.nodes,
        providers=args.providers,
        proving=proving,
        epoch_seconds=args.epoch_seconds,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        devnet.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = devnet.start()
        print(info.to_json(), flush=True)  # the FIRST stdout line: callers parse it
        devnet.run()
    finally:
        devnet.stop()
    print("devnet: stopped", file=sys.stderr, flush=True)
    return 0
