"""Every parser of untrusted bytes is bounded: hostile shapes raise only our errors, never a
RecursionError/ValueError/MemoryError, and never become a reading (issue 8 item 4).

Shapes: deep nesting up to 100,000 levels, numbers past Python's 4,300-digit int limit, 70 kB
strings, escaped lone surrogates, NUL, invalid UTF-8, and arbitrary bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import registry
from drivers.base import FrameBad, FrameOk
from drivers.bridge import TYPE_HELLO, TYPE_READING, encode_frame, parse_frame
from gateway.deals.client import Reply
from gateway.deals.discovery import parse_ask
from gateway.deals.proving import ProofResult, check_prove_response
from gateway.deals.repair import piece_cid_of
from gateway.deals.snapshot import decode_snapshot
from gateway.errors import FrameError, InputError, IntegrityError
from gateway.fleet.view import UNSIGNED, classify
from gateway.ingest.dedup import has_top_level_id, mqtt_key
from gateway.ingest.mqtt import validate_payload as reexported
from gateway.ingest.payload import validate_payload
from gateway.jsonsafe import MAX_DEPTH, MAX_NUMBER, json_problem, loads_bounded
from gateway.reading import Reading, ReceiveTime
from gateway.seal.codec_v2 import decode_readings, encode_readings
from gateway.seal.columns import CodecError
from gateway.seal.jsoncolumns import decode_documents, encode_documents

HOSTILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _deep_lists(n: int) -> bytes:
    return b"[" * n + b"]" * n


def _deep_objects(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


hostile_json = st.one_of(
    st.integers(MAX_DEPTH + 1, 100_000).map(_deep_lists),
    st.integers(MAX_DEPTH + 1, 100_000).map(_deep_objects),
    st.integers(MAX_DEPTH + 1, 100_000).map(lambda n: b"[" * n),
    st.integers(MAX_DEPTH + 1, 5_000).map(lambda n: b'{"id":1,"x":' + _deep_lists(n) + b"}"),
    st.integers(MAX_NUMBER + 1, 20_000).map(lambda n: b'{"n":' + b"9" * n + b"}"),
    st.integers(MAX_NUMBER + 1, 20_000).map(lambda n: b'{"id":-' + b"1" * n + b"}"),
    st.sampled_from([b'{"s":"\\ud800"}', b'"\\udfff"', b'["\\udc00\\ud800"]', b'{"\\ud83d":1}']),
)
# Not necessarily refused, but must never crash anything that parses them.
odd_json = st.one_of(
    hostile_json,
    st.integers(1, 70_000).map(lambda n: b'{"id":"' + b"x" * n + b'"}'),
    st.integers(1, 70_000).map(lambda n: b'{"s":"' + b"[" * n + b'"}'),
    st.sampled_from(
        [b'{"a":"\x00"}', b"\xed\xa0\x80", b'{"t":\xff}', b"\x00", b'{"id":1e999999}', b"NaN"]
    ),
    st.lists(st.sampled_from([b"[", b"{", b'"k":', b"]", b"}", b",", b'"', b"\\", b"1"])).map(
        b"".join
    ),
    st.binary(max_size=4096),
)
plain_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["id", "seq", "t"]) | st.text(), inner, max_size=4)
    ),
    max_leaves=20,
)


# -- the checker itself ---------------------------------------------------------------------------


@HOSTILE
@given(hostile_json)
def test_hostile_json_is_refused_with_a_reason_before_json_loads(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        loads_bounded(data, "test")
    assert caught.value.reason in {"too_deep", "number_too_long", "invalid_unicode"}
    assert validate_payload(data, "json", 1 << 20) == caught.value.reason


@HOSTILE
@given(odd_json)
def test_any_bytes_give_a_value_or_input_error_and_a_value_always_encodes(data: bytes) -> None:
    try:
        value = loads_bounded(data, "test")
    except InputError:
        return
    json.dumps(value, ensure_ascii=False).encode("utf-8")


@HOSTILE
@given(plain_json)
def test_ordinary_json_is_accepted_unchanged(document: Any) -> None:
    text = json.dumps(document)
    assert loads_bounded(text.encode(), "test") == json.loads(text)
    assert validate_payload(text.encode(), "json", 1 << 20) is None
    if has_top_level_id(text.encode()):  # the fast path never invents an id
        assert isinstance(document, dict) and ("id" in document or "seq" in document)


def test_the_limits_are_exact_and_brackets_or_digits_inside_strings_do_not_count() -> None:
    assert json_problem(_deep_lists(MAX_DEPTH)) is None
    assert json_problem(_deep_lists(MAX_DEPTH + 1)) == "too_deep"
    assert json_problem(b"[" + b"9" * MAX_NUMBER + b"]") is None
    assert json_problem(b"[" + b"9" * (MAX_NUMBER + 1) + b"]") == "number_too_long"
    inside = b'{"s":"' + b"[" * 5000 + b"9" * 5000 + b'\\"{"}'
    assert loads_bounded(inside, "t") == {"s": "[" * 5000 + "9" * 5000 + '"{'}
    assert loads_bounded('{"a":"\\ud83d\\ude00"}', "t") == {"a": "\U0001f600"}  # a valid pair
    assert reexported is validate_payload, "importers of gateway.ingest.mqtt keep working"


# -- MQTT validation and deduplication ------------------------------------------------------------


@HOSTILE
@given(odd_json, st.sampled_from(["json", "text", "any"]))
def test_validation_and_dedup_keys_never_raise(data: bytes, fmt: str) -> None:
    reason = validate_payload(data, fmt, 1 << 20)
    assert reason is None or isinstance(reason, str)
    if reason is None and fmt == "json":
        json.loads(data)  # whatever is accepted as JSON parses for every later reader
    assert isinstance(has_top_level_id(data), bool)
    assert mqtt_key("sensors/a", data).startswith(("id:", "h:"))


@HOSTILE
@given(st.integers(MAX_DEPTH + 1, 100_000))
def test_any_topic_quarantines_an_id_payload_it_cannot_look_into(n: int) -> None:
    assert validate_payload(b'{"id":1,"x":' + _deep_lists(n) + b"}", "any", 1 << 20) == "too_deep"
    assert validate_payload(_deep_lists(n), "any", 1 << 20) is None, "opaque bytes stay opaque"
    assert not has_top_level_id(b'{"x":' + _deep_lists(n) + b',"id":1}')


# -- serial drivers -------------------------------------------------------------------------------

DRIVERS = [name for name in registry.names() if name != "modbus"]  # modbus: its own suite


@HOSTILE
@given(st.sampled_from(DRIVERS), st.lists(odd_json, max_size=4))
def test_drivers_turn_hostile_bytes_into_frame_events_only(name: str, chunks: list[bytes]) -> None:
    driver = registry.create(name, {"max_line": "65536"} if name == "lines" else {})
    for chunk in chunks:
        for event in driver.feed(chunk + b"\r\n\x00"):
            assert isinstance(event, FrameOk | FrameBad)
            if isinstance(event, FrameOk):  # what the serial adapter stores next to the raw bytes
                json.dumps(event.values_json(), separators=(",", ":"))
        try:
            driver.decode(chunk)
        except FrameError:
            pass


@HOSTILE
@given(hostile_json)
def test_the_lines_driver_never_makes_a_reading_of_hostile_json(line: bytes) -> None:
    driver = registry.create("lines", {"max_line": "65536", "format": "json"})
    events = driver.feed(line[:65536] + b"\n")
    assert events and all(isinstance(e, FrameBad) for e in events)


@pytest.mark.parametrize(
    "cbor",
    [
        b"\xa2\x00\x00\x01" + b"\x81" * 100 + b"\x00",  # nesting past the protocol's depth
        b"\xa2\x00\x00\x01\xc2\x59\x03\x00" + b"\xff" * 768,  # a 1,850-digit bignum (tag 2)
        b"\xa2\x00\x00\x01\x3b" + b"\xff" * 8,  # -2**64: still a CBOR integer
        b"\xa2\x00\x00\x01\x7f\x61a\xff",  # indefinite-length text
        b"\xa2\x00\x00\x01\x62\xed\xa0",  # text that is not UTF-8
    ],
)
def test_bridge_cbor_payloads_beyond_the_protocol_are_frame_errors(cbor: bytes) -> None:
    wire = encode_frame(TYPE_READING, 1, cbor)
    if cbor.endswith(b"\x3b" + b"\xff" * 8):
        assert parse_frame(wire).payload[1] == -(2**64)
        return
    with pytest.raises(FrameError):
        parse_frame(wire)


@HOSTILE
@given(st.binary(max_size=1000), st.sampled_from([TYPE_READING, TYPE_HELLO]))
def test_bridge_frames_with_any_cbor_raise_only_frame_errors(body: bytes, kind: int) -> None:
    try:
        frame = parse_frame(encode_frame(kind, 7, body))
    except FrameError:
        return
    assert isinstance(frame.payload, dict)


# -- seal, node responses, fleet heartbeats -------------------------------------------------------


def _reading(seq: int, payload: bytes, decoded: str | None) -> Reading:
    when = ReceiveTime(1_700_000_000_000_000_000 + seq, seq, "boot", True)
    return Reading(seq, "mqtt", "sensors/a", when, payload, None, decoded)


@HOSTILE
@given(st.lists(odd_json, min_size=1, max_size=4))
def test_seal_codec_round_trips_hostile_payloads_exactly(payloads: list[bytes]) -> None:
    docs: list[bytes | None] = [*payloads, *payloads]  # twice: templates are shared
    assert decode_documents(encode_documents(docs, [0] * len(docs)), [0] * len(docs)) == docs
    decoded = [p.decode("utf-8", "surrogateescape") for p in payloads]
    readings = [_reading(i, p, d) for i, (p, d) in enumerate(zip(payloads, decoded, strict=True))]
    assert decode_readings(encode_readings(readings)) == readings


@pytest.mark.parametrize(
    "data", [b"\x81" * 100_000 + b"\x00", b"\xa1\x00" * 100_000 + b"\x00", b"\x5b" + b"\xff" * 8]
)
def test_seal_decoder_refuses_deep_or_huge_cbor_as_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_readings(data)


@HOSTILE
@given(odd_json)
def test_node_replies_and_asks_parse_to_a_value_or_our_error(body: bytes) -> None:
    reply = Reply(200, body, {})
    reply.json()
    assert isinstance(reply.code(), str)
    with pytest.raises(InputError):
        parse_ask(body)


@HOSTILE
@given(odd_json)
def test_hostile_heartbeats_show_as_unsigned(payload: bytes) -> None:
    entry = classify("depin/v1/gateways/gw1/status", payload, 0.0, 60.0)
    assert entry.state == UNSIGNED


PIECE = piece_cid_of(b"x" * 4096)


@HOSTILE
@given(odd_json | plain_json.map(lambda d: json.dumps({"leaves": [d, {"index": 0, "path": d}]})))
def test_prove_responses_from_a_node_are_a_proof_result_whatever_they_hold(body: Any) -> None:
    raw = body.encode() if isinstance(body, str) else body
    result = check_prove_response(PIECE, [0, 1], Reply(200, raw, {}).json())
    assert isinstance(result, ProofResult) and not result.ok


@HOSTILE
@given(st.one_of(st.binary(max_size=2048), hostile_json))
def test_ledger_snapshots_from_a_node_are_a_snapshot_or_an_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_snapshot(data)
