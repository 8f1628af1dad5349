"""``depin-gateway status``: the running gateway's status, from its local HTTP endpoint."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from gateway.config import Config, load_config
from gateway.errors import GatewayError

__all__ = ["cmd_status", "fetch_status"]


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
    status = fetch_status(load_config(args.config))
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
