"""Sealing inside the real daemon: crash-safe, tamper-evident, erasure-coded, owner-only."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.testing.broker import Broker
from tests.conftest import GatewayProcess, Publisher, restore, write_config

ROOT = Path(__file__).resolve().parent.parent
SMALL_BATCHES = """
[batch]
max_readings = 150
max_age = "300ms"
[storage]
data_fragments = 4
parity_fragments = 2
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)  # fmt: skip


def _sealed_gateway(tmp_path: Path, broker: Broker, make: Callable[[Path], GatewayProcess],
                    count: int) -> Path:  # fmt: skip
    config = write_config(tmp_path, broker.port, extra=SMALL_BATCHES)
    gw = make(config)
    gw.start()
    publisher = Publisher(broker.port)
    publisher.publish_all(
        [("sensors/s", json.dumps({"id": i, "t": 20 + i % 7})) for i in range(count)]
    )
    gw.wait_for(lambda s: s["readings_total"] == count)
    assert gw.stop() == 0
    publisher.close()
    return config


def _ids(config: Path, out: Path) -> list[int]:
    return [json.loads(row["payload"])["id"] for row in restore(config, out)]


def test_kill9_while_sealing_under_load_loses_and_duplicates_nothing(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    total = 12_000
    config = write_config(tmp_path, broker.port, extra=SMALL_BATCHES)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    done = threading.Event()

    def publish() -> None:
        for start in range(0, total, 400):
            publisher.publish_all([("sensors/k", json.dumps({"id": i}))
                                   for i in range(start, start + 400)])  # fmt: skip
            time.sleep(0.1)
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    kills = 0
    while not done.is_set() or kills < 4:
        time.sleep(random.uniform(0.3, 0.9))  # batches of 150 seal every few ms: kills hit seals
        gw.kill9()
        kills += 1
        gw.start()
    thread.join()
    # Sealing runs behind ingest in its worker (slower on a loaded machine): wait for it too.
    gw.wait_for(lambda s: s["readings_total"] >= total and s["batches_sealed"] > 10)
    assert gw.stop() == 0
    ids = _ids(config, tmp_path / "out.jsonl")
    assert len(ids) == total and set(ids) == set(range(total))
    verified = cli("verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    publisher.close()


def test_any_m_fragments_may_be_lost_but_not_m_plus_one(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = _sealed_gateway(tmp_path, broker, gateway_process, 600)
    vault = tmp_path / "state" / "vault"
    batches = sorted(p for p in vault.iterdir() if p.name.isdigit())
    assert len(batches) >= 4
    for batch in batches:
        for index in random.sample(range(6), 2):
            (batch / f"frag-{index}.bin").unlink()
    assert sorted(_ids(config, tmp_path / "a.jsonl")) == list(range(600))
    victim = batches[1]
    next(victim.glob("frag-*.bin")).unlink()
    result = cli("restore", "--config", str(config), "--out", str(tmp_path / "b.jsonl"))
    assert result.returncode == 1
    assert "batch 1" in result.stderr and "need 4 fragments, have 3" in result.stderr
    assert not (tmp_path / "b.jsonl").exists() and not list(tmp_path.glob("b.jsonl*"))


def test_wrong_or_missing_owner_key_is_a_clear_error(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = _sealed_gateway(tmp_path, broker, gateway_process, 200)
    assert cli("owner-key", "--out", str(tmp_path / "stranger.key")).returncode == 0
    wrong = cli("restore", "--config", str(config), "--out", str(tmp_path / "w.jsonl"),
                "--owner-key", str(tmp_path / "stranger.key"))  # fmt: skip
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "owner" in wrong.stderr.lower() or "key" in wrong.stderr.lower()
    assert not (tmp_path / "w.jsonl").exists()
    (tmp_path / "state" / "owner.key").rename(tmp_path / "kept.key")
    missing = cli("restore", "--config", str(config), "--out", str(tmp_path / "m.jsonl"))
    assert missing.returncode == 1 and "--owner-key" in missing.stderr
    ok = cli("restore", "--config", str(config), "--out", str(tmp_path / "k.jsonl"),
             "--owner-key", str(tmp_path / "kept.key"))  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_verify_names_the_batch_for_edits_deletions_swaps_and_truncation(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = _sealed_gateway(tmp_path, broker, gateway_process, 900)
    vault = tmp_path / "state" / "vault"
    batches = sorted(p for p in vault.iterdir() if p.name.isdigit())
    assert len(batches) >= 5 and cli("verify", "--config", str(config)).returncode == 0

    def verify() -> str:
        result = cli("verify", "--config", str(config))
        assert result.returncode == 1, result.stdout
        return result.stdout

    header = batches[2] / "header.cbor"
    original = header.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    header.write_bytes(bytes(flipped))
    assert "batch 2" in verify()
    header.write_bytes(original)

    fragment = batches[1] / "frag-0.bin"
    data = fragment.read_bytes()
    fragment.write_bytes(bytes([data[0] ^ 0x80]) + data[1:])
    assert "batch 1" in verify() and "fragments[0]" in verify()
    fragment.write_bytes(data)

    a, b = batches[1] / "header.cbor", batches[3] / "header.cbor"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    out = verify()
    assert "batch 1" in out or "batch 3" in out
    a.write_bytes(a_bytes)
    b.write_bytes(b_bytes)
    assert cli("verify", "--config", str(config)).returncode == 0

    last = batches[-1]
    last.rename(tmp_path / "removed-last")  # truncation: the newest batch disappears
    assert f"batch {int(last.name)}" in verify() or "truncat" in verify().lower()
    (tmp_path / "removed-last").rename(last)

    middle = batches[2]
    middle.rename(tmp_path / "removed-middle")
    assert "2" in verify() and "missing" in verify()


def test_exported_car_holds_every_header_with_the_chain_head_as_root(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    from gateway.piece.car import decode_car
    from gateway.seal import SignedHeader

    config = _sealed_gateway(tmp_path, broker, gateway_process, 500)
    result = cli("export-car", "--config", str(config), "--out", str(tmp_path / "ledger.car"))
    assert result.returncode == 0, result.stderr
    car = decode_car((tmp_path / "ledger.car").read_bytes())  # verifies every block's CID
    headers = [SignedHeader.from_block(block.data) for block in car.blocks]
    assert [h.header.seq for h in headers] == list(range(len(headers)))
    head = json.loads((tmp_path / "state" / "ledger-head.json").read_text())
    assert [str(c) for c in car.roots] == [head["cid"]] == [str(car.blocks[-1].cid)]
    for earlier, later in zip(car.blocks, headers[1:], strict=False):
        assert later.header.prev == earlier.cid, "each header links its predecessor"


def test_rotated_identity_is_certified_in_the_chain_and_everything_verifies(
    tmp_path: Path, broker: Broker, gateway_process: Callable[[Path], GatewayProcess]
) -> None:
    config = write_config(tmp_path, broker.port, extra=SMALL_BATCHES)
    gw = gateway_process(config)
    gw.start()
    publisher = Publisher(broker.port)
    publisher.publish_all([("sensors/r", json.dumps({"id": i})) for i in range(300)])
    before = gw.wait_for(lambda s: s["readings_total"] == 300 and s["batches_sealed"] >= 2)
    rotated = cli("rotate-key", "--config", str(config))
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.split()[2]
    publisher.publish_all([("sensors/r", json.dumps({"id": i})) for i in range(300, 600)])
    after = gw.wait_for(lambda s: s["readings_total"] == 600 and s["public_key"] == new_key)
    assert before["public_key"] != after["public_key"]
    assert gw.stop() == 0
    assert (tmp_path / "state" / "identity-genesis.pub").read_text() == before["public_key"]
    verified = cli("verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout
    assert sorted(_ids(config, tmp_path / "o.jsonl")) == list(range(600))
    publisher.close()
