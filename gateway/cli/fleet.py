"""``depin-gateway fleet``: the fleet's gateways as a table, JSON, or a live page (``--serve``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gateway.cli.checks import finite_positive
from gateway.config import load_config
from gateway.config.checks import check_path, parse_host_port, parse_mqtt_url
from gateway.errors import ConfigError

__all__ = ["add_fleet_arguments", "cmd_fleet"]

DEFAULT_LISTEN = "127.0.0.1:8788"


def add_fleet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="fleet broker mqtt://host:port (default: config [fleet])")
    p.add_argument("--json", action="store_true", help="a JSON list with a 'state' per gateway")
    p.add_argument(
        "--stale", type=finite_positive, default=180.0, help="seconds until STALE (default 180)"
    )
    p.add_argument("--keys", help="allow-list file: '<gateway-id> ed25519:<hex>' per line")
    p.add_argument("--pins", help="trust-on-first-use state file (default ~/.local/state/...)")
    p.add_argument("--serve", action="store_true", help="serve the live fleet page over HTTP")
    p.add_argument("--listen", help=f"with --serve: host:port (default {DEFAULT_LISTEN})")


def _pins(args: argparse.Namespace) -> object:
    from gateway.fleet.pins import KeyPins, default_pins_path

    if args.keys is not None and args.pins is not None:
        raise ConfigError("--keys", "--keys and --pins exclude each other", "pass one of them")
    if args.keys is not None:
        path = check_path("--keys", args.keys, Path.cwd())
        if not path.is_file():
            raise ConfigError("--keys", f"{args.keys} is not a file", "give the allow-list file")
        return KeyPins.allow_list(path)
    path = check_path("--pins", args.pins, Path.cwd()) if args.pins else default_pins_path()
    if path.is_dir():
        raise ConfigError("--pins", f"{path} is a directory", "give a file path")
    return KeyPins.trust_on_first_use(path)


def cmd_fleet(args: argparse.Namespace) -> int:
    from gateway.fleet.pins import KeyPins

    broker = args.broker or load_config(args.config).fleet.broker
    if not broker:
        raise ConfigError("fleet.broker", "no fleet broker configured", "pass --broker mqtt://h:p")
    parse_mqtt_url("--broker" if args.broker else "fleet.broker", broker)
    if args.listen is not None and not args.serve:
        raise ConfigError("--listen", "--listen needs --serve", "add --serve")
    listen = parse_host_port("--listen", args.listen or DEFAULT_LISTEN, DEFAULT_LISTEN, True)
    pins = _pins(args)
    assert isinstance(pins, KeyPins)
    if args.serve:
        from gateway.fleet.monitor import FleetMonitor
        from gateway.fleet.serve import serve_fleet

        return serve_fleet(broker, FleetMonitor(pins, args.stale, broker), *listen)
    from gateway.fleet.collect import collect_retained
    from gateway.fleet.view import KEY_CHANGED, classify_all, render_table

    entries = [pins.apply(e) for e in classify_all(collect_retained(broker), time.time(),
                                                   args.stale)]  # fmt: skip
    if args.json:
        print(json.dumps([entry.to_json() for entry in entries], indent=2))
    elif entries:
        print(render_table(entries))
    else:
        print(f"no gateway heartbeats on {broker}", file=sys.stderr)
    for entry in entries:
        if entry.state == KEY_CHANGED:  # loud, on stderr, whatever the output format
            print(f"WARNING: KEY CHANGED for {entry.gateway_id}: {entry.reason}", file=sys.stderr)
    return 0
