"""``depin-gateway``: the command line (DESIGN section 5).

Every user mistake is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.config import Config, load_config
from gateway.errors import ConfigError, GatewayError

__all__ = ["main"]

DEFAULT_CONFIG = "/etc/depin-gateway/gateway.toml"
EXIT_USAGE = 2


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_init(args: argparse.Namespace) -> int:
    from gateway.config_template import render_config
    from gateway.keys import (
        create_identity,
        create_owner_key,
        format_owner_public,
        parse_owner_public,
    )

    config_path = Path(args.config)
    state_dir = Path(args.state_dir or "/var/lib/depin-gateway").expanduser()
    if not state_dir.is_absolute():
        state_dir = Path.cwd() / state_dir
    identity = state_dir / "identity.key"
    if config_path.exists():
        print(f"config {config_path} exists; leaving it as it is", file=sys.stderr)
    owner_keys: list[str] = []
    if args.owner_pub:
        parse_owner_public(args.owner_pub)
        owner_keys.append(args.owner_pub.strip())
    elif not (state_dir / "owner.key").exists():
        owner = create_owner_key(state_dir / "owner.key")
        owner_keys.append(format_owner_public(owner.public_key))
        print(f"created owner key {state_dir / 'owner.key'} (keep a copy: it decrypts your data)")
    if identity.exists():
        print(f"identity {identity} exists; never overwritten")
    else:
        key = create_identity(identity)
        print(f"created identity {identity} ({key.verify_key.encode().hex()[:16]}...)")
    if not config_path.exists():
        if not owner_keys and (state_dir / "owner.key").exists():
            from gateway.keys import load_owner_secret

            owner_keys.append(
                format_owner_public(load_owner_secret(state_dir / "owner.key").public_key)
            )
        config_path.parent.mkdir(parents=True, exist_ok=True)
        gateway_id = args.id or os.uname().nodename.split(".")[0].replace(" ", "-") or "gateway"
        config_path.write_text(
            render_config(gateway_id, str(state_dir), owner_keys, args.mqtt_port)
        )
        print(f"wrote {config_path}")
    load_config(config_path)  # what we wrote must be valid
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.daemon import run

    config = _config(args)
    logging.basicConfig(
        level=logging.INFO if not args.quiet else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(config)


def fetch_status(config: Config) -> dict[str, Any]:
    url = f"http://{_http_host(config.status.host)}:{config.status.port}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data: dict[str, Any] = json.load(response)
            return data
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise GatewayError(f"no running gateway answers at {url} ({exc}); is it started?") from None


def _http_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def cmd_status(args: argparse.Namespace) -> int:
    status = fetch_status(_config(args))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"gateway   {status['gateway_id']}  v{status['version']}  up {status['uptime_s']:.0f}s")
    print(f"key       {status['public_key']}")
    print(f"readings  {status['readings_total']} durable, {status['spool_pending']} not yet sealed")
    print(f"batches   {status['batches_sealed']} sealed, {status['batches_durable']} durable")
    storage = status.get("storage", {})
    if storage.get("enabled"):
        fil = storage["fil"]
        head = status["ledger_head"] or "-"
        print(f"ledger    head {head} ({storage['ledger_head_batches']} batches)")
        print(
            f"storage   {len(storage['nodes'])} nodes, {storage['repairs']} repairs, "
            f"{fil['spent']} attoFIL spent, {fil['committed']} committed of {fil['budget']}"
        )
        if storage.get("budget_blocked"):
            print(f"BUDGET    {storage['budget_blocked']}")
    disk = status.get("disk", {})
    if disk:
        print(
            f"disk      {disk['used']} of {disk['budget']} bytes"
            f"{'  BACKPRESSURE' if status['backpressure'] else ''}"
        )
    for name, source in status.get("sources", {}).items():
        state = "connected" if source.get("connected") else "DISCONNECTED"
        print(f"source    {name}: {state}, {source.get('received', 0)} received")
    for component, error in status.get("last_error", {}).items():
        print(f"error     {component}: {error}")
    return 0


def _network_restore_args(args: argparse.Namespace) -> tuple[str, str, list[str], str]:
    """--gateway-key, --head, --nodes, --owner-key; missing ones come from --config's state."""
    nodes = [n.strip() for n in (args.nodes or "").split(",") if n.strip()]
    key, head, owner = args.gateway_key, args.head, args.owner_key
    if not (key and head and nodes and owner):
        from gateway.deals.book import Book
        from gateway.deals.eventlog import EventLog

        config = _config(args)
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
    return str(key), str(head), nodes, str(owner)


def cmd_restore(args: argparse.Namespace) -> int:
    from gateway.restore_local import restore_local

    out_path = Path(args.out)
    tmp = out_path.with_name(out_path.name + ".partial")
    if args.from_network:
        from gateway.deals.netrestore import restore_from_network

        key, head, nodes, owner = _network_restore_args(args)
    else:
        config = _config(args)
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            if args.from_network:
                summary = restore_from_network(key, head, nodes, owner, out)
            else:
                summary = restore_local(config, out, owner_key=args.owner_key)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave partial or garbage output behind
        raise
    tmp.replace(out_path)
    print(
        f"restored {summary.readings} readings from {summary.batches} batches to {out_path}"
        f" ({summary.duplicates} redelivered duplicates skipped)",
        file=sys.stderr,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.restore_local import verify_local

    report = verify_local(_config(args))
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
    from gateway.export_car import export_car

    count, root = export_car(_config(args), Path(args.out))
    print(f"wrote {count} batch headers to {args.out} (root {root})")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from gateway.identity import Identity
    from gateway.keys import format_gateway_public

    identity = Identity(_config(args).state_dir)
    if identity.pending() is not None:
        raise GatewayError("a rotation is already pending; it completes with the next sealed batch")
    new = identity.start_rotation()
    print(f"new identity {format_gateway_public(new)} is certified by the current key in the next")
    print("sealed batch; from then on batches are signed by the new key (the running daemon")
    print("picks it up by itself)")
    return 0


def cmd_owner_key(args: argparse.Namespace) -> int:
    from gateway.keys import create_owner_key, format_owner_public

    key = create_owner_key(Path(args.out))
    print(format_owner_public(key.public_key))
    return 0


def cmd_piece_cid(args: argparse.Namespace) -> int:
    from gateway.piece.cli import piece_cid_main

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
        return node_init_main(args.config, args.data_dir, args.listen)
    return node_run_main(args.config)


def cmd_fleet(args: argparse.Namespace) -> int:
    import time

    from gateway.fleet.collect import collect_retained
    from gateway.fleet.view import classify_all, render_table

    broker = args.broker or _config(args).fleet.broker
    if not broker:
        raise ConfigError("fleet.broker", "no fleet broker configured", "pass --broker mqtt://h:p")
    if args.stale <= 0:
        raise ConfigError("fleet", "--stale must be > 0", "e.g. --stale 180")
    entries = classify_all(collect_retained(broker), time.time(), args.stale)
    if args.json:
        print(json.dumps([entry.to_json() for entry in entries], indent=2))
    elif entries:
        print(render_table(entries))
    else:
        print(f"no gateway heartbeats on {broker}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(duration=args.duration, workdir=args.workdir, rate=args.rate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depin-gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"depin-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str, config: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (TOML)")
        p.set_defaults(handler=handler)
        return p

    p = add("init", cmd_init, "write a commented config and a new identity key")
    p.add_argument("--state-dir", help="state directory (default /var/lib/depin-gateway)")
    p.add_argument("--owner-pub", help="owner X25519 public key (x25519:...) that can decrypt")
    p.add_argument("--id", help="gateway id (default: host name)")
    p.add_argument("--mqtt-port", type=int, default=1883, help=argparse.SUPPRESS)
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
    add("verify", cmd_verify, "check every signature, chain link and hash of the local ledger")
    add("rotate-key", cmd_rotate_key, "start an identity key rotation, certified in the chain")
    p = add("export-car", cmd_export_car, "export the batch headers as a CAR v1 file")
    p.add_argument("--out", required=True, help="CAR file to write")
    p = add("owner-key", cmd_owner_key, "create an owner key pair (X25519)", config=False)
    p.add_argument("--out", required=True, help="secret key file to create (mode 0600)")
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
    p = add("fleet", cmd_fleet, "every gateway's latest signed heartbeat as a table")
    p.add_argument("--broker", help="fleet broker mqtt://host:port (default: config [fleet])")
    p.add_argument("--json", action="store_true", help="a JSON list with a 'state' per gateway")
    p.add_argument("--stale", type=float, default=180.0, help="seconds until STALE (default 180)")
    p = add("demo", cmd_demo, "run the whole system locally and check a restore", config=False)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of sensor traffic")
    p.add_argument("--rate", type=float, default=200.0, help="readings per second in total")
    p.add_argument("--workdir", help="where to keep the demo state (default: a temp dir)")
    from gateway.chain.cli import add_parser as add_wallet_parser

    add_wallet_parser(sub)
    from gateway.testing.devnet_cli import add_parser as add_devnet_parser

    add_devnet_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except ConfigError as exc:
        print(f"depin-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GatewayError as exc:
        print(f"depin-gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
