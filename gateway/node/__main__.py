"""``python -m gateway.node init|run``: the node without the rest of the CLI (tests, systemd)."""

from __future__ import annotations

import argparse
import sys

from gateway.node.cli import node_init_main, node_run_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.node")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write a node config and create the provider key")
    init.add_argument("--config", required=True)
    init.add_argument("--data-dir", required=True)
    init.add_argument("--listen")
    run = commands.add_parser("run", help="serve until SIGTERM/SIGINT")
    run.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    if args.command == "init":
        return node_init_main(args.config, args.data_dir, args.listen)
    return node_run_main(args.config)


if __name__ == "__main__":
    sys.exit(main())
