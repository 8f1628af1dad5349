"""Node config validation, `node init` / `node run`, the ask announced on a real broker, and the
pure cores (deal transitions, ranges, token buckets, proof trees)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.errors import ConfigError
from gateway.market.messages import Ask
from gateway.node import NodeThread, load_node_config, node_config_from_string, node_init_main
from gateway.node.deals import TRANSITIONS, DealEvent, DealState, InvalidTransition, next_state
from gateway.node.prooftree import ProofTrees
from gateway.node.ranges import RangeNotSatisfiable, parse_range
from gateway.node.ratelimit import RateLimiter
from gateway.piece import commp, piece_cid_v2, piece_proof, verify_inclusion
from gateway.testing.broker import Broker
from gateway.testing.node_client import make_node_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('capacity = "lots"', "node.capacity"),
        ('max_piece_size = "100KiB"', "node.max_piece_size"),
        ('min_piece_size = "128MiB"', "node.min_piece_size"),
        ("price = -1", "node.price"),
        ('listen = "nowhere"', "node.listen"),
        ('fleet_broker = "http://x"', "node.fleet_broker"),
        ('capcity = "1GiB"', "node.capcity"),
        ('max_duration = "1s"', "node.max_duration"),
        ('provider_id = "a/b"', "node.provider_id"),
    ],
)
def test_config_errors_name_the_key(line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        node_config_from_string(f'[node]\ndata_dir = "d"\n{line}\n')
    assert info.value.key == key


def test_config_defaults_and_missing_section(tmp_path: Path) -> None:
    config = node_config_from_string('[node]\ndata_dir = "d"\n', tmp_path / "n.toml")
    assert (config.listen, config.capacity, config.max_piece_size) == (
        "127.0.0.1:8900",
        10 << 30,
        64 << 20,
    )
    assert config.min_piece_size == 128 and config.identity == tmp_path / "d" / "node.key"
    assert config.max_duration_epochs == 540 * 2880
    with pytest.raises(ConfigError, match="no \\[node\\] section"):
        node_config_from_string('[gateway]\nid = "x"\n')


def test_node_init_writes_a_valid_config_and_a_private_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.toml"
    assert node_init_main(path, tmp_path / "data", "127.0.0.1:9999") == 0
    config = load_node_config(path)
    assert config.listen == "127.0.0.1:9999" and config.data_dir == tmp_path / "data"
    assert stat.S_IMODE(config.identity.stat().st_mode) == 0o600
    key = config.identity.read_bytes()
    assert "provider ed25519:" in capsys.readouterr().out
    assert node_init_main(path, tmp_path / "data") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    path.unlink()
    assert node_init_main(path, tmp_path / "data") == 0
    assert config.identity.read_bytes() == key  # the key is never overwritten


def test_node_run_without_a_key_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\ndata_dir = "{tmp_path / "d"}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "gateway.node", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "node init" in result.stderr


def test_ask_is_announced_retained_on_the_fleet_broker(tmp_path: Path) -> None:
    with Broker(tmp_path / "broker") as broker:
        config = make_node_config(
            tmp_path,
            fleet_broker=f"mqtt://127.0.0.1:{broker.port}",
            announce_interval="0.2s",
            provider_id="node-a",
        )
        with NodeThread(config) as node:
            received: list[bytes] = []
            got = threading.Event()

            def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
                received.append(message.payload)
                got.set()

            sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
            sub.on_message = on_message
            sub.on_connect = lambda c, *_: c.subscribe("depin/v1/nodes/+/ask", qos=1)
            sub.connect("127.0.0.1", broker.port)
            sub.loop_start()
            try:
                assert got.wait(10)
                deadline = time.monotonic() + 10
                while len(received) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                sub.disconnect()
                sub.loop_stop()
            asks = [Ask.open(json.loads(payload))[0] for payload in received]
            assert node.node is not None and asks[0].provider == node.node.provider
            assert asks[0].url == node.url and len(asks) >= 2 and asks[1].seq > asks[0].seq


def test_transition_table_is_the_documented_lifecycle() -> None:
    assert next_state(DealState.ACCEPTED, DealEvent.UPLOADED) is DealState.ACTIVE
    assert next_state(DealState.ACTIVE, DealEvent.END) is DealState.EXPIRED
    with pytest.raises(InvalidTransition):
        next_state(DealState.FAILED, DealEvent.UPLOADED)
    terminal = {DealState.FAILED, DealState.REMOVED, DealState.REJECTED}
    assert not {state for state, _ in TRANSITIONS} & terminal


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=10-1000", (10, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
    ],
)
def test_range_parsing(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-2", "bytes=-0", "bytes=x-y", "bytes=-"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_token_bucket_refills_with_time() -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert limiter.try_take("a", 0.0) == 0 and limiter.try_take("a", 0.0) == 0
    assert limiter.try_take("a", 0.0) == pytest.approx(0.5)
    assert limiter.try_take("b", 0.0) == 0  # clients are independent
    assert limiter.try_take("a", 0.5) == 0
    assert limiter.take_debt("a", 0.5, 4) == pytest.approx(2.0)


@pytest.mark.parametrize("size", [0, 65, 127, 4064, 4065, 100_000, 1_300_000])
def test_proof_tree_paths_match_piece_proof_and_verify(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "piece"
    path.write_bytes(data)
    info = commp(data)
    cid = str(piece_cid_v2(info))
    trees = ProofTrees(tmp_path)
    leaves = sorted({0, (1 << info.height) - 1, (1 << info.height) // 3})
    for _ in range(2):  # built, then from the cache file
        for index, leaf, proof in trees.prove(cid, path, info, leaves):
            assert verify_inclusion(info.root, leaf, index, proof, info.height)
            assert (leaf, proof) == piece_proof(data, index)
        trees.forget(cid)
