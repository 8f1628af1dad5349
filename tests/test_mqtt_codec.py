"""The MQTT 5 client codec, back to back with an independent broker-side encoder, and fuzzed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.mqtt_codec import (
    ConnAck,
    Decoder,
    Disconnect,
    MqttProtocolError,
    PingResp,
    Publish,
    PubRel,
    SubAck,
    encode_connect,
    encode_puback,
    encode_pubcomp,
    encode_pubrec,
    encode_subscribe,
    varint,
)
from gateway.ingest.mqtt_reasons import connack_reason
from tests.mqtt_peer import (
    broker_encode_publish,
    connack,
    decode_client,
    packet,
    pubrel,
    suback,
)
from tests.mqtt_peer import varint as peer_varint

topics = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="+#\x00"),
    min_size=1,
    max_size=40,
)
publishes = st.builds(
    lambda topic, payload, qos, pid, dup, retain: (
        topic,
        payload,
        qos,
        pid if qos else 0,
        dup,
        retain,
    ),
    topics,
    st.binary(max_size=300),
    st.integers(0, 2),
    st.integers(1, 65535),
    st.booleans(),
    st.booleans(),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(st.lists(publishes, max_size=20), st.lists(st.integers(0, 10_000), max_size=8),
       st.binary(max_size=12))  # fmt: skip
def test_publishes_survive_any_split_of_the_stream(
    messages: list[tuple[str, bytes, int, int, bool, bool]], cuts: list[int], props: bytes
) -> None:
    """Whatever recv() boundaries, the decoder yields exactly the packets the broker encoded,
    with any properties (here user-property-shaped bytes) skipped."""
    properties = b"\x26" + struct.pack("!H", len(props)) + props + b"\x00\x00" if props else b""
    stream = b"".join(broker_encode_publish(t.encode(), p, q, i, dup=d, retain=r,
                                            properties=properties)
                      for t, p, q, i, d, r in messages)  # fmt: skip
    decoder = Decoder()
    events = [e for chunk in _split(stream, cuts) for e in decoder.feed(chunk)]
    assert events == [Publish(t, p, q, i, d, r) for t, p, q, i, d, r in messages]
    assert decoder.buffered == 0


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_never_crashes_and_never_yields_a_bad_publish(data: bytes) -> None:
    """Arbitrary bytes: either events that are valid values, or MqttProtocolError; nothing else."""
    decoder = Decoder()
    try:
        events = decoder.feed(data)
    except MqttProtocolError:
        return
    for event in events:
        if isinstance(event, Publish):
            assert event.topic and "#" not in event.topic and "+" not in event.topic
            assert (event.qos > 0) == (event.packet_id > 0)


@given(st.integers(0, 268_435_455))
def test_varint_matches_the_peer(value: int) -> None:
    assert varint(value) == peer_varint(value)


def test_control_packets_from_the_broker() -> None:
    reason = b"\x1f" + struct.pack("!H", 6) + b"go away"[:6]
    stream = (connack(True, 0, b"\x21\x00\x10") + suback(1, b"\x01\x80") + pubrel(7)
              + b"\xd0\x00" + packet(0xE0, b"\x8e") + connack(False, 0x87, reason))  # fmt: skip
    events = Decoder().feed(stream)
    assert events == [
        ConnAck(True, 0, None), SubAck(1, (1, 0x80)), PubRel(7), PingResp(), Disconnect(0x8E),
        ConnAck(False, 0x87, "go awa"),
    ]  # fmt: skip
    assert connack_reason(events[-1]) == "Not authorized (go awa)"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (b"\x30\x05\x00\x01\xff\x00x", "topic is not UTF-8"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id 0"),
        (b"\x30\x04\x00\x01#\x00", "wildcard in a topic"),
        (b"\x30\x03\x00\x01a", "no property length"),
        (b"\x62\x02\x00\x00", "PUBREL packet id 0"),
        (b"\x60\x02\x00\x01", "PUBREL with reserved flags 0"),
        (b"\x40\x02\x00\x01", "PUBACK is not for a subscriber"),
        (b"\x30\xff\xff\xff\xff\x7f", "remaining length of five bytes"),
        (b"\x30\x06\x00\x01a\x05\x00\x00", "properties past the packet"),
    ],
)
def test_malformed_packets_are_protocol_errors(stream: bytes, why: str) -> None:
    with pytest.raises(MqttProtocolError):
        Decoder().feed(stream)


def test_client_packets_decode_on_the_broker_side() -> None:
    """CONNECT carries level 5, clean start false, session expiry and Receive Maximum; SUBSCRIBE
    carries retain handling 1; acks are the 4-byte forms the ack-after-fsync test decodes."""
    stream = encode_connect("gw-1", keepalive=30, clean_start=False, session_expiry=3600,
                            receive_maximum=1000, username="u", password="p")  # fmt: skip
    stream += encode_subscribe(1, [("sensors/#", 1), ("raw/#", 2)], retain_handling=1)
    stream += encode_puback(9) + encode_pubrec(10) + encode_pubcomp(10)
    connect, subscribe, puback, pubrec, pubcomp = decode_client(stream)
    assert connect.kind == 1 and connect.body[:7] == b"\x00\x04MQTT\x05"
    assert connect.body[7] == 0xC0  # username + password, clean start clear
    assert connect.body[10:21] == b"\x08\x11\x00\x00\x0e\x10\x21\x03\xe8\x00\x04"
    assert subscribe.kind == 8 and subscribe.flags == 2
    assert subscribe.body == (b"\x00\x01\x00" + b"\x00\x09sensors/#\x11" + b"\x00\x05raw/#\x12")
    assert (puback.kind, puback.body) == (4, b"\x00\x09")
    assert (pubrec.kind, pubrec.body) == (5, b"\x00\x0a")
    assert (pubcomp.kind, pubcomp.body) == (7, b"\x00\x0a")
