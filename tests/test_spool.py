"""The spool keeps every committed reading and recovers from torn writes and damage."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.reading import Reading, ReceiveTime
from gateway.spool import Spool, encode_record
from gateway.spool.record import SEGMENT_MAGIC, decode_body, scan

BOOT = str(uuid.UUID(int=12345))
TIME = ReceiveTime(1_700_000_000_000_000_000, 42, BOOT, True)


def _fill(spool: Spool, count: int, size: int = 40) -> list[bytes]:
    payloads = [os.urandom(size) for _ in range(count)]
    for index, payload in enumerate(payloads):
        spool.add("mqtt", "sensors/a", TIME, payload, key=f"id:{payload.hex()}")
        if index % 10 == 9:
            spool.commit()  # segments rotate at commit boundaries
    spool.commit()
    return payloads


def test_committed_readings_survive_reopen_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 4096)
    payloads = _fill(spool, 300)
    spool.close()
    reopened = Spool(tmp_path, 4096)
    readings = list(reopened.readings())
    assert [r.payload for r in readings] == payloads
    assert [r.seq for r in readings] == list(range(1, 301))
    assert reopened.stats().segments > 1, "segments rotate at segment_size"
    assert reopened.add("mqtt", "t", TIME, b"x") == 301, "sequence numbers never repeat"


def test_torn_tail_at_every_offset_recovers_to_last_whole_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "src", 1 << 20)
    payloads = _fill(spool, 5, size=30)
    spool.close()
    segment = next((tmp_path / "src").glob("*.seg")).read_bytes()
    last_len = len(encode_record(next(iter(Spool(tmp_path / "src", 1 << 20).readings()))))
    start_of_last = len(segment) - last_len
    for cut in range(start_of_last, len(segment)):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / "00000000000000000001.seg").write_bytes(segment[:cut])
        recovered = Spool(directory, 1 << 20)
        assert [r.payload for r in recovered.readings()] == payloads[:4], cut
        assert (directory / "00000000000000000001.seg").stat().st_size == start_of_last
        assert recovered.add("mqtt", "t", TIME, b"new") == 5, "seq continues after the whole ones"
        recovered.commit()
        recovered.close()
        again = Spool(directory, 1 << 20)
        assert [r.payload for r in again.readings()][-1] == b"new"


def test_damage_in_the_middle_skips_only_the_bad_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    payloads = _fill(spool, 10)
    spool.close()
    path = next(tmp_path.glob("*.seg"))
    data = bytearray(path.read_bytes())
    record_len = (len(data) - len(SEGMENT_MAGIC)) // 10
    data[len(SEGMENT_MAGIC) + 3 * record_len + 20] ^= 0xFF  # inside record 4's body
    path.write_bytes(bytes(data))
    recovered = Spool(tmp_path, 1 << 20)
    assert [r.payload for r in recovered.readings()] == payloads[:3] + payloads[4:]
    assert recovered.stats().damaged_bytes == record_len


def test_release_deletes_whole_sealed_segments_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 2048)
    _fill(spool, 100)
    before = spool.stats().segments
    spool.release(50)
    assert spool.stats().segments < before
    assert [r.seq for r in spool.readings()] == list(range(51, 101))
    spool.close()
    assert [r.seq for r in Spool(tmp_path, 2048).readings()] == list(range(51, 101))


def test_failed_write_is_undone_and_retried(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    _fill(spool, 3)
    spool.add("mqtt", "t", TIME, b"later")
    os.close(spool._fd)  # the next write fails like a yanked disk would
    spool._fd = os.open(os.devnull, os.O_RDONLY)
    try:
        spool.commit()
    except Exception as exc:
        assert "spool write failed" in str(exc)
    else:
        raise AssertionError("commit on a read-only fd must fail")
    assert spool.stats().unflushed == 1, "the reading stays queued, not lost"
    spool._fd = -1
    spool.commit()
    assert [r.payload for r in spool.readings()][-1] == b"later"


readings = st.builds(
    Reading,
    seq=st.integers(0, 2**63),
    source=st.text(min_size=1, max_size=20),
    topic=st.text(max_size=60),
    time=st.builds(
        ReceiveTime,
        st.integers(0, 2**62),
        st.integers(0, 2**63),
        st.uuids().map(str),
        st.booleans(),
    ),
    payload=st.binary(max_size=300),
    key=st.none() | st.text(max_size=40),
    decoded=st.none() | st.text(max_size=80),
)


@given(readings)
def test_record_round_trip(reading: Reading) -> None:
    record = encode_record(reading)
    assert decode_body(record[8:]) == reading


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_never_crashes_and_yields_no_reading(garbage: bytes) -> None:
    found: list[tuple[int, Reading]] = []
    result = scan(SEGMENT_MAGIC + garbage, len(SEGMENT_MAGIC), found)
    assert found == []
    assert result.valid_end == len(SEGMENT_MAGIC)


@given(st.lists(readings, min_size=1, max_size=5), st.binary(max_size=50), st.data())
def test_scan_finds_records_around_garbage(
    items: list[Reading], junk: bytes, data: st.DataObject
) -> None:
    where = data.draw(st.integers(0, len(items)))
    blob = b"".join(encode_record(r) for r in items[:where]) + junk
    blob += b"".join(encode_record(r) for r in items[where:])
    found: list[tuple[int, Reading]] = []
    scan(SEGMENT_MAGIC + blob, len(SEGMENT_MAGIC), found)
    got = [r for _, r in found]
    # Garbage may hide the record right after it only if it swallowed its frame; never invents one.
    assert all(r in items for r in got)
    assert got[:where] == items[:where]


def test_raw_batch_hands_over_exactly_what_readings_would_decode(tmp_path: Path) -> None:
    """The sealer ships raw records to its worker: same readings, same limits, damage skipped."""
    from gateway.seal.worker import decode_records

    spool = Spool(tmp_path, 4096)
    payloads = _fill(spool, 120)
    spool.release(10)
    records, count, last = spool.raw_batch(max_count=50, max_bytes=1 << 20)
    assert count == 50 and last == 60
    assert decode_records(records, 1) == list(spool.readings())[:50]
    _, count, last = spool.raw_batch(max_count=1000, max_bytes=40 * 5)
    assert (count, last) == (5, 15), "max_bytes counts payload bytes"
    spool.close()
    path = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(path.read_bytes())
    data[len(SEGMENT_MAGIC) + 30] ^= 0xFF  # damage the first record of the last segment
    path.write_bytes(bytes(data))
    reopened = Spool(tmp_path, 4096)
    records, count, _ = reopened.raw_batch(max_count=1000, max_bytes=1 << 30)
    assert decode_records(records, 1) == list(reopened.readings())
    assert count == len(payloads) - 10 - 1
