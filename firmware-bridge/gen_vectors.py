"""Regenerate firmware-bridge/vectors.json: `python firmware-bridge/gen_vectors.py` from the root.

The vectors are the contract: the C library, the MicroPython module and the gateway decoder are
all tested against the committed file, byte for byte. This script only documents how it was made:
frames are encoded with cbor2 in canonical mode (an independent CBOR encoder), COBS pairs and
decode errors are copied from tests/vectors/sensors.json (cmcqueen/cobs-python), the CRC check
value is the one of the CRC catalogue ("CRC-32/ISO-HDLC", check=0xcbf43926), and the reading
worked example is the one in tests/vectors/sensors.json. Review a diff of vectors.json by hand.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import cbor2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.cobs import cobs_encode  # noqa: E402

BOOT = 0x1234ABCD
SENSORS = [["pm2_5", "ug/m3"], ["humidity", "%RH"], ["temperature", "Cel"]]


def to_json(value: Any) -> Any:
    """CBOR value -> JSON: int map keys as strings, bytes as {"$bytes": hex}."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    return value


def body(type_: int, seq: int, payload: bytes, version: int = 1) -> bytes:
    return struct.pack("<BBH", version, type_, seq) + payload


def framed(raw: bytes) -> bytes:
    return raw + struct.pack("<I", zlib.crc32(raw))


def wire(frame: bytes) -> str:
    return (cobs_encode(frame) + b"\x00").hex()


def frame_vector(
    name: str, type_: int, seq: int, payload: dict[int, Any], note: str = ""
) -> dict[str, Any]:
    cbor = cbor2.dumps(payload, canonical=True)
    raw = body(type_, seq, cbor)
    vector = {
        "name": name,
        "type": type_,
        "seq": seq,
        "payload": to_json(payload),
        "payload_cbor": cbor.hex(),
        "crc": f"{zlib.crc32(raw):08x}",
        "frame": framed(raw).hex(),
        "wire": wire(framed(raw)),
    }
    if note:
        vector["note"] = note
    return vector


def invalid(
    name: str, frame: bytes | None, error: str, note: str, wire_hex: str | None = None
) -> dict[str, Any]:
    layer = "frame" if error in ("cobs", "length", "crc", "version", "type") else "payload"
    return {
        "name": name,
        "wire": wire_hex if wire_hex is not None else wire(frame or b""),
        "error": error,
        "layer": layer,
        "note": note,
    }


def main() -> None:
    sensors = json.loads((ROOT / "tests/vectors/sensors.json").read_text())
    example = sensors["firmware_bridge_example"]
    cobs_src = sensors["cobs"]

    long_run = bytes(range(1, 255))  # 254 non-zero bytes: exactly one full COBS block
    own_pairs = [
        long_run,
        long_run + b"\x00",
        b"\x00" + long_run,
        long_run + b"\xff",
        long_run[:253],
        long_run + long_run,
        b"\x11\x22\x00\x33",
        b"\x00\x00\x00",
    ]
    cobs = {
        "note": cobs_src["note"],
        "source": "pairs and decode_errors copied from tests/vectors/sensors.json key 'cobs' "
        "(cmcqueen/cobs-python src/cobs/cobs/test.py); own_pairs are ours (block boundaries)",
        "pairs": cobs_src["pairs"],
        "decode_errors": cobs_src["decode_errors"],
        "own_pairs": [[p.hex(), cobs_encode(p).hex()] for p in own_pairs],
        "own_decode_errors": ["02", "ff01", "0300"],
    }

    crc = [
        {"data": "", "crc": "00000000", "note": "empty input"},
        {"data": b"123456789".hex(), "crc": "cbf43926", "note": "CRC catalogue check value"},
        {
            "data": example["raw"][:-8],
            "crc": "e1001940",
            "note": "worked example body (sensors.json)",
        },
        {"data": "00" * 32, "crc": f"{zlib.crc32(bytes(32)):08x}", "note": "32 zero bytes"},
    ]

    hello = {0: "esp32-0a1b2c", 1: "1.0.0", 2: SENSORS, 3: BOOT, 4: 0, 5: 8}
    frames = [
        frame_vector(
            "reading_worked_example",
            1,
            7,
            {0: 2, 1: 23.5, 2: 1700000000},
            "tests/vectors/sensors.json firmware_bridge_example: float16 value",
        ),
        frame_vector(
            "reading_int_no_time", 1, 0, {0: 0, 1: 12}, "no clock on the device: key 2 omitted"
        ),
        frame_vector("reading_negative_int", 1, 1, {0: 1, 1: -40, 2: 1700000001}),
        frame_vector("reading_float32", 1, 2, {0: 0, 1: 100000.0}, "exact in float32, not float16"),
        frame_vector("reading_float64", 1, 3, {0: 2, 1: 3.14159}, "not exact in float32"),
        frame_vector("reading_float16_subnormal", 1, 4, {0: 2, 1: 5.960464477539063e-08}, "2^-24"),
        frame_vector("reading_negative_zero", 1, 5, {0: 2, 1: -0.0}),
        frame_vector("reading_text", 1, 6, {0: 1, 1: "ok"}),
        frame_vector("reading_bytes", 1, 8, {0: 1, 1: b"\x00\x01\xff"}, "zeros inside the payload"),
        frame_vector("reading_true", 1, 9, {0: 1, 1: True}),
        frame_vector("reading_null", 1, 10, {0: 1, 1: None}, "sensor present, no value"),
        frame_vector("reading_big_uint", 1, 11, {0: 0, 1: 4294967296, 2: 1700000002}),
        frame_vector("reading_seq_ffff", 1, 0xFFFF, {0: 0, 1: 1}, "last seq before the wrap"),
        frame_vector(
            "reading_seq_zero_after_wrap", 1, 0, {0: 0, 1: 2}, "after the wrap (hello key 4 = 1)"
        ),
        frame_vector("hello", 2, 7, hello, "boot nonce 0x1234abcd, seq_hi 0, 8 ring slots"),
        frame_vector(
            "hello_after_wrap", 2, 5, {**hello, 4: 1}, "next reading has extended seq 65541"
        ),
        frame_vector("hello_no_sensors", 2, 0, {0: "pico-1", 1: "0.1", 2: [], 3: 1, 4: 0}),
        frame_vector("log", 4, 8, {0: 2, 1: "sensor 2 warming up"}),
        frame_vector("log_long", 4, 9, {0: 1, 1: "x" * 300}, "crosses a 254-byte COBS block"),
        frame_vector("ack_reading", 3, 7, {0: BOOT}, "acks reading seq 7 of boot 0x1234abcd"),
        frame_vector("ack_hello", 3, 7, {0: BOOT, 1: 2}, "acks the hello with seq 7"),
        frame_vector("hello_request", 3, 0, {2: 1}, "acks nothing, asks for a hello"),
    ]

    ok_reading = body(1, 7, bytes.fromhex(example["payload_cbor"]))
    good = framed(ok_reading)
    flipped_crc = good[:-1] + bytes([good[-1] ^ 0x01])
    flipped_payload = bytearray(good)
    flipped_payload[8] ^= 0x10

    def raw_payload(type_: int, payload: bytes, seq: int = 7) -> bytes:
        return framed(body(type_, seq, payload))

    def enc(value: Any) -> bytes:
        return cbor2.dumps(value, canonical=True)

    too_long = framed(body(4, 1, enc({0: 1, 1: "y" * 1010})))
    assert len(too_long) == 1025, len(too_long)
    invalids = [
        invalid(
            "cobs_code_past_end", None, "cobs", "code byte 05 but 3 bytes follow", "0531323300"
        ),
        invalid("cobs_zero_inside", None, "cobs", "zero byte inside the frame", "03310032333400"),
        invalid("length_short", framed(b"\x01\x01\x07\x00"), "length", "8 bytes: no payload"),
        invalid("length_one_byte", None, "length", "a lone byte", "021100"),
        invalid("length_long", too_long, "length", "1025 decoded bytes, limit 1024"),
        invalid("crc_last_byte", flipped_crc, "crc", "worked example, CRC byte flipped"),
        invalid(
            "crc_payload_bit", bytes(flipped_payload), "crc", "worked example, payload bit flipped"
        ),
        invalid("version_2", framed(body(1, 7, ok_reading[4:], version=2)), "version", "version 2"),
        invalid("version_0", framed(body(1, 7, ok_reading[4:], version=0)), "version", "version 0"),
        invalid("type_0", raw_payload(0, ok_reading[4:]), "type", "type 0"),
        invalid("type_5", raw_payload(5, ok_reading[4:]), "type", "type 5 (not in version 1)"),
        invalid(
            "cbor_trailing",
            raw_payload(1, ok_reading[4:] + b"\x00"),
            "cbor",
            "a byte after the map",
        ),
        invalid(
            "cbor_truncated", raw_payload(1, bytes.fromhex("a30002")), "cbor", "map of 3, 1 pair"
        ),
        invalid(
            "cbor_indefinite",
            raw_payload(1, bytes.fromhex("bf0002011817ff")),
            "cbor",
            "indefinite map",
        ),
        invalid(
            "cbor_tag",
            raw_payload(1, bytes.fromhex("a3000201f94de002c11a6553f100")),
            "cbor",
            "tag 1",
        ),
        invalid(
            "cbor_undefined",
            raw_payload(1, bytes.fromhex("a2000201f7")),
            "cbor",
            "simple value undefined",
        ),
        invalid(
            "cbor_text_key", raw_payload(1, bytes.fromhex("a2000261610c")), "cbor", "text map key"
        ),
        invalid(
            "cbor_duplicate_key",
            raw_payload(1, bytes.fromhex("a300020102000c")),
            "cbor",
            "key 0 twice",
        ),
        invalid("payload_not_map", raw_payload(1, bytes.fromhex("820201")), "payload", "an array"),
        invalid(
            "payload_reading_no_value", raw_payload(1, enc({0: 2})), "payload", "key 1 missing"
        ),
        invalid(
            "payload_reading_negative_sensor",
            raw_payload(1, enc({0: -1, 1: 2})),
            "payload",
            "sensor -1",
        ),
        invalid(
            "payload_reading_array_value",
            raw_payload(1, enc({0: 1, 1: [1, 2]})),
            "payload",
            "array value",
        ),
        invalid(
            "payload_hello_bad_device",
            raw_payload(2, enc({**hello, 0: "bad id!"})),
            "payload",
            "space and !",
        ),
        invalid(
            "payload_hello_no_boot",
            raw_payload(2, enc({k: v for k, v in hello.items() if k != 3})),
            "payload",
            "key 3 missing",
        ),
        invalid("payload_log_no_message", raw_payload(4, enc({0: 1})), "payload", "key 1 missing"),
        invalid(
            "payload_ack_empty", raw_payload(3, enc({})), "payload", "neither boot nor request"
        ),
        invalid(
            "payload_ack_bad_type", raw_payload(3, enc({0: BOOT, 1: 5})), "payload", "acked type 5"
        ),
        invalid("payload_ack_bool_boot", raw_payload(3, enc({0: True})), "payload", "boot is true"),
        invalid(
            "payload_ack_big_boot", raw_payload(3, enc({0: 2**32})), "payload", "boot over u32"
        ),
        invalid("payload_ack_not_map", raw_payload(3, enc(7)), "payload", "a bare uint"),
        invalid(
            "cbor_ack_trailing",
            raw_payload(3, enc({0: BOOT}) + b"\x01"),
            "cbor",
            "a byte after the map",
        ),
        invalid(
            "cbor_ack_truncated",
            raw_payload(3, bytes.fromhex("a1001a1234")),
            "cbor",
            "u32 cut short",
        ),
        invalid(
            "cbor_ack_tag", raw_payload(3, bytes.fromhex("a100c11a1234abcd")), "cbor", "tagged boot"
        ),
    ]

    vectors = {
        "_about": "Shared vectors of the depin firmware bridge (PROTOCOL.md). The C library "
        "(tests/test_bridge_c.py), the MicroPython module (tests/test_bridge_micropython.py) and "
        "the gateway decoder drivers/bridge.py (tests/test_bridge_codec.py) all pass every entry "
        "byte for byte. Hex strings; 'wire' includes the 0x00 delimiter; 'frame' is the decoded "
        "frame (header | payload | CRC LE); 'crc' is the CRC-32 as a number. Payload JSON: map "
        'keys are the integer keys as strings, bytes are {"$bytes": hex}. Invalid frames: '
        "'error' is the code every decoder reports; layer 'frame' errors are found by the frame "
        "decoder of all three, layer 'payload' errors by the gateway (and by the C / MicroPython "
        "ack parser for type 3 frames). Regenerate with firmware-bridge/gen_vectors.py.",
        "cobs": cobs,
        "crc32": crc,
        "frames": frames,
        "invalid": invalids,
    }
    out = Path(__file__).resolve().parent / "vectors.json"
    out.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
