"""The key structure of /status is a public interface (DESIGN section 7): pinned from a real
gateway process with every section live (MQTT, a serial port, a storage node, the fleet broker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.testing.broker import Broker
from gateway.testing.nodes import DemoNode
from tests.conftest import GatewayProcess, Publisher, write_config
from tests.test_serial_support import Pty

MAP = "*"  # {MAP: leaf}: a dict keyed by data (reasons, states, components), not by field names
OPT_STR, OPT_INT, OPT_FLOAT = "str|NoneType", "int|NoneType", "float|NoneType"
COUNTS = {MAP: "int"}
MQTT = {
    "connected": "bool",
    "broker": "str",
    "received": "int",
    "connects": "int",
    "disconnects": "int",
    "rejected": COUNTS,
    "receive_maximum": "int",
    "last_error": OPT_STR,
}
SERIAL = {
    "connected": "bool",
    "state": "str",
    "port": OPT_STR,
    "configured_port": "str",
    "driver": "str",
    "baudrate": "int",
    "frames_ok": "int",
    "frames_bad": "int",
    "duplicates": "int",
    "last_bad_reason": OPT_STR,
    "last_reading_at": OPT_STR,
    "reopens": "int",
    "paused_s": "float",
    "last_error": OPT_STR,
    "other_frames": COUNTS,
}
SPOOL = {
    "pending": "int",
    "unflushed": "int",
    "bytes": "int",
    "segments": "int",
    "next_seq": "int",
    "released_upto": "int",
    "commits": "int",
    "damaged_bytes": "int",
    "truncated_bytes": "int",
}
SEAL = {
    "enabled": "bool",
    "readings_sealed": "int",
    "last_compression_ratio": OPT_FLOAT,
    "vault_bytes": "int",
    "dictionary": OPT_STR,
    "data_fragments": "int",
    "parity_fragments": "int",
    "last_error": OPT_STR,
}
NODE = {
    "provider": "str",
    "url": "str",
    "reachable": "bool",
    "price_per_gib_epoch": OPT_STR,
    "free_bytes": OPT_INT,
    "reputation": "float",
    "proofs_passed": "int",
    "proofs_failed": "int",
    "uploads_ok": "int",
    "uploads_failed": "int",
    "placements": "int",
    "last_error": "str",
}
STORAGE = {
    "enabled": "bool",
    "nodes": [NODE],
    "asks_rejected": "int",
    "deals": COUNTS,
    "placements": COUNTS,
    "fragments_placed": "int",
    "fragments_proven": "int",
    "batches": "int",
    "batches_durable": "int",
    "batches_fully_redundant": "int",
    "batches_evicted": "int",
    "repairs": "int",
    "fil": {"spent": "str", "committed": "str", "budget": "str", "available": "str"},
    "budget_state": "str",
    "budget_blocked": OPT_STR,
    "placement_blocked": OPT_STR,
    "ledger_head": OPT_STR,
    "ledger_head_batches": "int",
    "ledger_head_last_seq": OPT_INT,
    "last_error": OPT_STR,
    "backends": {},  # per backend beside the market (e.g. "foc"): none configured here
}
SEAL_BACKOFF = {
    "failures": "int",
    "next_retry_at": "str",
    "next_retry_in_s": "float",
    "needed_bytes": OPT_INT,
    "waiting_for_space": "bool",
    "error": "str",
}
DISK = {
    "used": "int",
    "budget": "int",
    "fraction": "float",
    "filesystem_free": "int",
    "reserve": "int",
    "below_reserve": "bool",
    "seal_backoff": "NoneType",
    "bytes_written": "int",
    "fsyncs": "int",
}
STATUS = {
    "gateway_id": "str", "public_key": "str", "version": "str", "uptime_s": "float",
    "readings_total": "int", "spool_pending": "int", "batches_sealed": "int",
    "batches_durable": "int", "quarantined": "int", "backpressure": "bool", "ledger_head": "str",
    "healthy": "bool", "degraded": [],
    "clock": {"synced": "bool", "boot_id": "str"},
    "sources": {"mqtt": MQTT, "serial:pty": SERIAL},
    "spool": SPOOL, "seal": SEAL, "storage": STORAGE, "duplicates_dropped": "int",
    "quarantine": {"by_reason": COUNTS, "bytes": "int", "dropped": "int"},
    "disk": DISK, "stopped": {MAP: "str"}, "last_error": {MAP: "str"},
}  # fmt: skip


def mismatches(value: Any, expected: Any, path: str = "status") -> list[str]:
    """Where ``value`` departs from ``expected``: dict keys in order, list items, leaf types."""
    if isinstance(expected, dict) and MAP in expected:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, expected a map"]
        return [m for k, v in value.items() for m in mismatches(v, expected[MAP], f"{path}.{k}")]
    if isinstance(expected, dict):
        if not isinstance(value, dict) or list(value) != list(expected):
            keys = list(value) if isinstance(value, dict) else type(value).__name__
            return [f"{path}: keys {keys}, expected {list(expected)}"]
        return [m for k in expected for m in mismatches(value[k], expected[k], f"{path}.{k}")]
    if isinstance(expected, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, expected a list"]
        if not expected:
            return [] if value == [] else [f"{path}: {value!r}, expected []"]
        if not value:
            return [f"{path}: empty, expected items"]
        return [m for i, v in enumerate(value) for m in mismatches(v, expected[0], f"{path}[{i}]")]
    if type(value).__name__ not in expected.split("|"):
        return [f"{path}: {type(value).__name__} {value!r}, expected {expected}"]
    return []


def live_status(tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess],
                ) -> dict[str, Any]:  # fmt: skip
    node = DemoNode(tmp_path / "node", broker.port, rate_requests=100000, rate_burst=100000,
                    announce_interval="1s")  # fmt: skip
    node.start()
    pty = Pty()
    try:
        extra = "\n".join([
            "[batch]", "max_readings = 5", 'max_age = "1s"',
            "[storage]", f"nodes = {json.dumps([node.url])}", "data_fragments = 1",
            "parity_fragments = 0", 'deal_duration = "1d"', 'request_timeout = "2s"',
            "[proving]", 'interval = "1s"',
            "[fleet]", f'broker = "mqtt://127.0.0.1:{broker.port}"',
            f'[[serial]]\nname = "pty"\nport = "{pty.path}"\ndriver = "lines"\n',
        ])  # fmt: skip
        gateway = gateway_process(write_config(tmp_path, broker.port, extra))
        gateway.start()
        publisher = Publisher(broker.port)
        publisher.publish_all([(f"sensors/t{i}", json.dumps({"v": i})) for i in range(10)])
        publisher.publish_all([("sensors/bad", b"not json")])
        publisher.close()
        pty.write(b"t=21.5\n")
        status = gateway.wait_for(lambda s: s["batches_durable"] >= 1 and s["ledger_head"]
                                  and s["sources"]["serial:pty"]["frames_ok"] >= 1)  # fmt: skip
        gateway.stop()
        return status
    finally:
        pty.unplug()
        node.stop()


def test_status_of_a_live_gateway_keeps_every_key_in_order_with_its_type(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    """Every key tools may read, at every depth, in today's order, with today's JSON types."""
    status = live_status(tmp_path, broker, gateway_process)
    assert mismatches(status, STATUS) == []
    assert status["quarantine"]["by_reason"] == {"invalid_json": 1}
    assert status["sources"]["mqtt"]["rejected"] == {"invalid_json": 1}


def test_the_pinned_shape_rejects_a_renamed_a_missing_or_a_retyped_key() -> None:
    """The checker itself: it would notice a change."""
    good = {"a": 1, "b": {"c": None, "d": [{"e": "x"}]}, "m": {"k": 1}}
    pinned = {"a": "int", "b": {"c": OPT_STR, "d": [{"e": "str"}]}, "m": COUNTS}
    assert mismatches(good, pinned) == []
    assert mismatches({"b": good["b"], "a": 1, "m": {}}, pinned) != []  # order
    assert mismatches(good | {"a": "1"}, pinned) != []
    assert mismatches(good | {"b": {"c": None, "d": [{"f": "x"}]}}, pinned) != []
    assert mismatches(good | {"m": {"k": "1"}}, pinned) != []
