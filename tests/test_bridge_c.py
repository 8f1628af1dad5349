"""The C firmware library (firmware-bridge/c): built with gcc via its Makefile, unit tests run,
every shared vector checked byte for byte through the bridge_encode CLI, and the C link driven
back to back with the gateway's Bridge decoder."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.base import FrameOk
from drivers.bridge import Bridge, parse_frame
from drivers.cobs import cobs_decode

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "firmware-bridge" / "c"
VECTORS: dict[str, Any] = json.loads((ROOT / "firmware-bridge" / "vectors.json").read_text())

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bridge-c")
    result = subprocess.run(
        ["make", "-C", str(C_DIR), f"BUILD={out}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def cli(build: Path, lines: list[str]) -> list[str]:
    result = subprocess.run(
        [str(build / "bridge_encode")],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def ops(value: Any) -> list[str]:
    """Vector payload JSON -> bridge_encode CBOR ops (map keys in ascending order)."""
    if isinstance(value, dict) and "$bytes" in value:
        return ["B" + (value["$bytes"] or "")]
    if isinstance(value, dict):
        out = [f"M{len(value)}"]
        for key in sorted(value, key=int):
            out += [f"U{int(key)}", *ops(value[key])]
        return out
    if isinstance(value, list):
        return [f"A{len(value)}"] + [op for item in value for op in ops(item)]
    if value is None:
        return ["N"]
    if isinstance(value, bool):
        return ["T" if value else "F"]
    if isinstance(value, int):
        return [f"U{value}" if value >= 0 else f"I{value}"]
    if isinstance(value, float):
        return [f"D{value!r}"]
    assert isinstance(value, str)
    return ["S" + value.encode().hex()]


def test_c_unit_tests_pass(build: Path) -> None:
    result = subprocess.run(
        [str(build / "test_depin_bridge")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.fullmatch(r"(\d+) passed, 0 failed\n", result.stdout)
    assert match and int(match.group(1)) > 100, result.stdout


def test_c_frames_equal_the_vectors_byte_for_byte(build: Path) -> None:
    frames = VECTORS["frames"]
    lines = [f"frame {f['type']} {f['seq']} {' '.join(ops(f['payload']))}" for f in frames]
    for vector, got in zip(frames, cli(build, lines), strict=True):
        assert got == vector["wire"], vector["name"]


def test_c_decodes_the_frame_vectors(build: Path) -> None:
    frames = VECTORS["frames"]
    got = cli(build, [f"decode {f['wire']}" for f in frames])
    for vector, line in zip(frames, got, strict=True):
        assert line == f"ok {vector['type']} {vector['seq']} {vector['payload_cbor']}"
    acks = [f for f in frames if f["type"] == 3]
    for vector, line in zip(acks, cli(build, [f"ack {f['wire']}" for f in acks]), strict=True):
        payload = vector["payload"]
        boot = payload.get("0")
        has = 1 if boot is not None else 0
        want = (
            f"ok {vector['seq']} {has} {boot or 0:08x} {payload.get('1', 1)} {payload.get('2', 0)}"
        )
        assert line == want, vector["name"]


def test_c_rejects_the_invalid_vectors_with_their_code(build: Path) -> None:
    invalid = VECTORS["invalid"]
    decoded = cli(build, [f"decode {v['wire']}" for v in invalid])
    as_ack = cli(build, [f"ack {v['wire']}" for v in invalid])
    for vector, line, ack_line in zip(invalid, decoded, as_ack, strict=True):
        if vector["layer"] == "frame":
            assert line == f"error {vector['error']}", vector["name"]
        elif cobs_decode(bytes.fromhex(vector["wire"])[:-1])[1] == 3:
            assert line.startswith("ok 3 ")  # the ack parser finds the payload error
            assert ack_line == f"error {vector['error']}", vector["name"]
        else:  # the device never parses reading/hello/log payloads
            assert line.startswith("ok "), vector["name"]


def test_c_cobs_and_crc_vectors(build: Path) -> None:
    pairs = VECTORS["cobs"]["pairs"] + VECTORS["cobs"]["own_pairs"]
    errors = VECTORS["cobs"]["decode_errors"] + VECTORS["cobs"]["own_decode_errors"]
    crcs = VECTORS["crc32"]
    lines = [f"cobs_enc {p[0] or '-'}" for p in pairs]
    lines += [f"cobs_dec {p[1]}" for p in pairs]
    lines += [f"cobs_dec {e}" for e in errors]
    lines += [f"crc {c['data'] or '-'}" for c in crcs]
    got = iter(cli(build, lines))
    for _, encoded in pairs:
        assert next(got) == encoded
    for plain, _ in pairs:
        assert next(got) == (plain or "-")
    for _ in errors:
        assert next(got) == "error cobs"
    for vector in crcs:
        assert next(got) == vector["crc"]


# --- the C link against the gateway decoder -------------------------------------------------------


class CDevice:
    """The C depin_bridge link inside bridge_encode, one command at a time."""

    def __init__(self, build: Path, boot: int) -> None:
        self.proc = subprocess.Popen(
            [str(build / "bridge_encode")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.sent = bytearray()
        self.status = ""
        self.command(f"init {boot:x} 500 200 0")

    def command(self, line: str) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        while (reply := self.proc.stdout.readline().rstrip("\n")) != ".":
            assert reply, "bridge_encode exited"
            kind, _, rest = reply.partition(" ")
            if kind == "tx":
                self.sent += bytes.fromhex(rest)
            else:
                self.status = rest

    def unacked(self) -> int:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("unacked\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


@pytest.fixture
def device(build: Path) -> Iterator[CDevice]:
    dev = CDevice(build, 0xC0FFEE)
    yield dev
    dev.close()


def test_c_link_exactly_once_through_lost_acks_and_gateway_restarts(device: CDevice) -> None:
    rng = random.Random(1234)
    driver = Bridge()
    spool: dict[str, bytes] = {}
    now = 0
    lossy = True

    def pump() -> None:
        nonlocal driver
        data, device.sent[:] = bytes(device.sent), b""
        for event in driver.feed(data):
            if not isinstance(event, FrameOk):
                continue
            if event.kind == "reading":
                assert event.key
                spool.setdefault(event.key, event.raw)
            ack = driver.ack(event)
            if ack and not (lossy and rng.random() < 0.4):
                device.command(f"rx {now} {ack.hex()}")

    device.command(f"start {now}")
    accepted = []
    for i in range(60):
        device.command(f"reading {now} {i % 3} {i * 0.25} {1700000000 + i}")
        if device.status == "ok":
            accepted.append(i * 0.25)
        else:
            assert device.status == "full"  # the host build has 4 slots
        if rng.random() < 0.05:
            driver = Bridge()  # gateway restart: session forgotten
            for command in driver.start_commands():
                device.command(f"rx {now} {command.hex()}")
        for _ in range(rng.choice((1, 3, 12))):
            pump()
            now += 50
            device.command(f"tick {now}")
    lossy = False
    for _ in range(200):
        pump()
        now += 50
        device.command(f"tick {now}")
    assert device.unacked() == 0
    got = sorted(parse_frame(raw).payload[1] for raw in spool.values())  # type: ignore[type-var]
    assert got == sorted(accepted) and len(accepted) > 20
    assert all(key.startswith("c-sim-01:00c0ffee:") for key in spool)
