"""``depin-gateway dataset export|verify`` (DESIGN section 12): arguments and exit codes.

Exit 0: done (verify: everything checked out); 1: verify found a problem, or a runtime error;
2: a usage error, including the ``dataset`` extra (pyarrow, mlcroissant) not being installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, GatewayError

__all__ = ["add_parser", "main", "parse_time"]

EXIT_USAGE = 2
MISSING = "the dataset commands need pyarrow: pip install 'depin-gateway[dataset]'"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from ISO 8601 ("2026-12-01", "2026-12-01T10:00:00Z")."""
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            "--from/--to", f"{text!r} is not a time", 'use ISO 8601, e.g. "2026-12-01T10:00:00Z"'
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)  # a time without a zone is UTC, like received_at
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


def add_parser(subparsers: Any) -> None:
    text = "Parquet + Croissant datasets with provenance anyone can verify: export, verify"
    p = subparsers.add_parser("dataset", help=text, description=text)
    sub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    e = sub.add_parser("export", help="write a dataset directory from the state directory")
    e.add_argument("--config", default="/etc/depin-gateway/gateway.toml", help="config file")
    e.add_argument("--out", required=True, help="dataset directory to create (new or empty)")
    e.add_argument("--from", dest="since", help="first receive time (ISO 8601, UTC)")
    e.add_argument("--to", dest="until", help="end of the window (exclusive, ISO 8601, UTC)")
    e.add_argument("--sources", help="comma-separated sources, e.g. mqtt,serial:gps")
    e.add_argument("--owner-key", help="owner secret key file (default: the state dir's)")
    e.add_argument("--max-file-size", default="128MiB", help="close a Parquet file at this size")
    e.add_argument("--license", default="CC-BY-4.0", help="SPDX license id for the card")
    e.add_argument("--creator", help="creator named in croissant.json (default: gateway id)")
    e.add_argument("--name", help="dataset name (default: '<gateway id> sensor readings')")
    e.add_argument("--url", help="where the dataset is published (croissant.json url)")
    v = sub.add_parser("verify", help="check a dataset directory against the signed ledger")
    v.add_argument("dir", help="dataset directory")
    v.add_argument("--gateway-key", help="the gateway's genesis public key (ed25519:...)")
    p.set_defaults(handler=main)


def _have_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def main(args: argparse.Namespace) -> int:
    if not _have_pyarrow():
        print(f"depin-gateway: {MISSING}", file=sys.stderr)
        return EXIT_USAGE
    if args.dataset_command == "export":
        return _export(args)
    from gateway.dataset.verify import verify_dataset
    from gateway.keys import parse_gateway_public

    if args.gateway_key:
        try:
            parse_gateway_public(args.gateway_key)
        except GatewayError as exc:
            raise ConfigError("--gateway-key", str(exc), "pass ed25519:<64 hex digits>") from None
    report = verify_dataset(Path(args.dir), args.gateway_key)
    for line in report.notes:
        print(line, file=sys.stderr)
    for problem in report.problems:
        print(f"FAIL {problem}")
    print(report.summary())
    return 0 if report.ok else 1


def _export(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.dataset.export import ExportOptions, export_dataset
    from gateway.units import parse_size

    config = load_config(args.config)
    try:
        max_size = parse_size(args.max_file_size)
    except ValueError as exc:
        raise ConfigError("--max-file-size", str(exc), 'e.g. "64MiB"') from None
    sources = frozenset(s.strip() for s in args.sources.split(",")) if args.sources else None
    options = ExportOptions(
        out=Path(args.out),
        owner_key=args.owner_key,
        since_ns=parse_time(args.since) if args.since else None,
        until_ns=parse_time(args.until) if args.until else None,
        sources=sources,
        max_file_size=max(max_size, 4096),
        license=args.license,
        creator=args.creator,
        name=args.name,
        url=args.url,
    )
    summary = export_dataset(config, options)
    print(
        f"{summary.rows} readings in {summary.files} Parquet files from {summary.batches} "
        f"sealed batches ({summary.partial_batches} partial) and {summary.unsealed} unsealed "
        f"readings -> {summary.out}"
    )
    return 0
