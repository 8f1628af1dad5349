"""``depin-gateway``: the command line (DESIGN section 5).

Every user mistake is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from gateway import __version__
from gateway.cli.checks import (
    check_dir_arg,
    finite_positive,
    gateway_id_arg,
    out_file,
    port_number,
    preflight_run,
)
from gateway.cli.doctor import add_doctor_arguments, cmd_doctor
from gateway.cli.fleet import add_fleet_arguments, cmd_fleet
from gateway.cli.init import cmd_init
from gateway.cli.status import cmd_status
from gateway.config import Config, load_config
from gateway.config.checks import check_path, parse_host_port, parse_http_url
from gateway.errors import ConfigError, GatewayError, KeyMaterialError, one_line

__all__ = ["main"]

DEFAULT_CONFIG = "/etc/depin-gateway/gateway.toml"
EXIT_USAGE = 2


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _state_config(args: argparse.Namespace) -> Config:
    """The config of a command that reads the state directory: it must hold an identity."""
    config = _config(args)
    if not (config.state_dir / "identity.key").is_file():
        raise ConfigError(
            "gateway.state_dir",
            f"{config.state_dir} holds no gateway state (no identity.key)",
            f"check gateway.state_dir in {args.config}, or run depin-gateway init",
        )
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.daemon import run

    config = _config(args)
    # Before logging starts: a host problem is one line, and nothing has been started yet.
    preflight_run(config.path, config.state_dir, config.status.listen)
    logging.basicConfig(
        level=logging.INFO if not args.quiet else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(config)


def _network_restore_args(args: argparse.Namespace) -> tuple[str, str, list[str], str]:
    """--gateway-key, --head, --nodes, --owner-key; missing ones come from --config's state."""
    nodes = [n.strip() for n in (args.nodes or "").split(",") if n.strip()]
    key, head, owner = args.gateway_key, args.head, args.owner_key
    if not (key and head and nodes and owner):
        from gateway.deals.book import Book
        from gateway.deals.eventlog import EventLog

        config = _state_config(args)
        genesis = config.state_dir / "identity-genesis.pub"
        key = key or (genesis.read_text().strip() if genesis.exists() else None)
        book = Book()
        book.replay(EventLog(config.state_dir / "ledger", read_only=True).events)
        head = head or (book.head["piece"] if book.head else None)
        nodes = nodes or list(config.storage.nodes) or sorted({n.url for n in book.nodes.values()})
        owner = owner or str(config.state_dir / "owner.key")
    for name, value in (("--gateway-key", key), ("--head", head), ("--nodes", nodes)):
        if not value:
            raise ConfigError("restore", f"{name} is needed with --from-network", f"pass {name}")
    from gateway.keys import parse_gateway_public

    try:
        parse_gateway_public(str(key))
    except KeyMaterialError as exc:
        raise ConfigError("--gateway-key", exc.reason, "it is in status as public_key") from None
    nodes = [parse_http_url("--nodes", url) for url in nodes]
    return str(key), str(head), nodes, str(owner)


def cmd_restore(args: argparse.Namespace) -> int:
    from gateway.restore import atomic_output
    from gateway.restore.local import restore_local

    out_path = out_file("--out", args.out)
    if args.from_network:
        from gateway.restore.network import restore_from_network

        key, head, nodes, owner = _network_restore_args(args)
    else:
        config = _state_config(args)
    if (
        args.owner_key is not None
        and not check_path("--owner-key", args.owner_key, Path.cwd()).is_file()
    ):
        raise ConfigError("--owner-key", f"{args.owner_key} is not a file", "give the owner.key")
    with atomic_output(out_path) as out:  # never leaves partial output behind
        if args.from_network:
            summary = restore_from_network(key, head, nodes, owner, out)
        else:
            summary = restore_local(config, out, owner_key=args.owner_key)
    print(
        f"restored {summary.readings} readings from {summary.batches} batches to {out_path}"
        f" ({summary.duplicates} redelivered duplicates skipped)",
        file=sys.stderr,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.restore.local import verify_local

    report = verify_local(_state_config(args))
    for problem in report.problems:
        print(f"FAIL {problem}")
    if not report.ok:
        print(
            f"verify: {len(report.problems)} problem(s) in {report.checked} batches",
            file=sys.stderr,
        )
        return 1
    head = f", head {report.head}" if report.head else ""
    print(
        f"verify: OK, {report.checked} batches, {report.fragments_checked} fragments checked{head}"
    )
    return 0


def cmd_export_car(args: argparse.Namespace) -> int:
    from gateway.restore.export_car import export_car

    count, root = export_car(_state_config(args), out_file("--out", args.out))
    print(f"wrote {count} batch headers to {args.out} (root {root})")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from gateway.keys import format_gateway_public
    from gateway.keys.identity import Identity

    identity = Identity(_state_config(args).state_dir)
    if identity.pending() is not None:
        raise GatewayError("a rotation is already pending; it completes with the next sealed batch")
    new = identity.start_rotation()
    print(f"new identity {format_gateway_public(new)} is certified by the current key in the next")
    print("sealed batch; from then on batches are signed by the new key (the running daemon")
    print("picks it up by itself)")
    return 0


def cmd_owner_key(args: argparse.Namespace) -> int:
    from gateway.keys import create_owner_key, format_owner_public

    path = out_file("--out", args.out)
    if path.exists():
        raise ConfigError(
            "--out", f"{path} exists; refusing to overwrite a key", "choose a new file"
        )
    key = create_owner_key(path)
    print(format_owner_public(key.public_key))
    return 0


def cmd_piece_cid(args: argparse.Namespace) -> int:
    from gateway.piece.cli import piece_cid_main

    for name in args.files:
        path = check_path("FILE", name, Path.cwd())
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "is not a readable file"
            raise ConfigError("FILE", f"{name} {what}", "give the files to measure")
    return piece_cid_main(args.files, args.json, sys.stdout)


def cmd_drivers(args: argparse.Namespace) -> int:
    from drivers.cli import drivers_main

    return drivers_main(args.action, args.driver, args.hex, args.option or [], sys.stdout)


def cmd_node(args: argparse.Namespace) -> int:
    from gateway.node.cli import node_init_main, node_run_main

    if args.action == "init":
        if not args.data_dir:
            raise ConfigError(
                "node init", "--data-dir is required", "e.g. --data-dir /var/lib/depin-node"
            )
        if args.listen is not None:
            parse_host_port("--listen", args.listen, "--listen 127.0.0.1:8900", allow_zero=True)
        config = check_path("--config", args.config, Path.cwd())
        if config.exists():
            what = "is a directory" if config.is_dir() else "exists; refusing to overwrite it"
            raise ConfigError("--config", f"{config} {what}", "choose another --config path")
        check_dir_arg("--config", config.parent)
        check_dir_arg("--data-dir", args.data_dir)
        return node_init_main(args.config, args.data_dir, args.listen)
    return node_run_main(args.config)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli.demo import run_demo

    if args.workdir is not None:
        check_dir_arg("--workdir", args.workdir)
    return run_demo(duration=args.duration, workdir=args.workdir, rate=args.rate)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument, exit 2 (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message, 300)} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="depin-gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"depin-gateway {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str, config: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (TOML)")
        p.set_defaults(handler=handler)
        return p

    _gateway_commands(add)
    _tool_commands(add)
    from gateway.cli.wallet import add_parser as add_wallet_parser

    add_wallet_parser(sub)
    from gateway.testing.devnet_cli import add_parser as add_devnet_parser

    add_devnet_parser(sub)
    return parser


_Add = Callable[..., argparse.ArgumentParser]


def _gateway_commands(add: _Add) -> None:
    p = add("init", cmd_init, "write a commented config and a new identity key")
    p.add_argument("--state-dir", help="state directory (default /var/lib/depin-gateway)")
    p.add_argument("--owner-pub", help="owner X25519 public key (x25519:...) that can decrypt")
    p.add_argument("--id", type=gateway_id_arg, help="gateway id (default: host name)")
    p.add_argument("--mqtt-port", type=port_number, default=1883, help=argparse.SUPPRESS)
    p = add("run", cmd_run, "run the gateway daemon")
    p.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    p = add("status", cmd_status, "status of the running gateway")
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p = add("restore", cmd_restore, "write every reading as JSON lines")
    p.add_argument("--out", required=True, help="output file (JSON lines)")
    p.add_argument("--owner-key", help="owner secret key file (default: the state dir's owner.key)")
    p.add_argument("--from-network", action="store_true", help="fetch everything from nodes")
    p.add_argument("--gateway-key", help="with --from-network: the gateway's ed25519 public key")
    p.add_argument("--head", help="with --from-network: the ledger head CID (status ledger_head)")
    p.add_argument("--nodes", help="with --from-network: storage node URLs, comma-separated")
    add_doctor_arguments(add("doctor", cmd_doctor, "check broker, disk, clock, ports, keys, nodes"))
    add("verify", cmd_verify, "check every signature, chain link and hash of the local ledger")
    add("rotate-key", cmd_rotate_key, "start an identity key rotation, certified in the chain")
    p = add("export-car", cmd_export_car, "export the batch headers as a CAR v1 file")
    p.add_argument("--out", required=True, help="CAR file to write")
    p = add("owner-key", cmd_owner_key, "create an owner key pair (X25519)", config=False)
    p.add_argument("--out", required=True, help="secret key file to create (mode 0600)")


def _tool_commands(add: _Add) -> None:
    p = add(
        "piece-cid",
        cmd_piece_cid,
        "payload size, padded size and piece CIDs of files",
        config=False,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p = add("drivers", cmd_drivers, "list sensor drivers or decode one frame", config=False)
    p.add_argument("action", choices=["list", "decode"])
    p.add_argument("driver", nargs="?", help="driver name (for decode)")
    p.add_argument("hex", nargs="?", help="frame as hex (for decode)")
    p.add_argument("--option", action="append", metavar="K=V", help="driver option (repeatable)")
    p = add("node", cmd_node, "run a storage node: rent out idle disk for FIL")
    p.add_argument("action", choices=["init", "run"])
    p.add_argument("--data-dir", help="node init: where pieces and the node key live")
    p.add_argument("--listen", help="node init: host:port to serve on (default 127.0.0.1:8900)")
    add_fleet_arguments(add("fleet", cmd_fleet, "every gateway's signed heartbeat (or --serve)"))
    p = add("demo", cmd_demo, "run the whole system locally and check a restore", config=False)
    p.add_argument(
        "--duration", type=finite_positive, default=60.0, help="seconds of sensor traffic"
    )
    p.add_argument(
        "--rate", type=finite_positive, default=200.0, help="readings per second in total"
    )
    p.add_argument("--workdir", help="where to keep the demo state (default: a temp dir)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except ConfigError as exc:
        print(f"depin-gateway: {one_line(str(exc), 1200)}", file=sys.stderr)
        return EXIT_USAGE
    except GatewayError as exc:
        print(f"depin-gateway: {one_line(str(exc), 1200)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
