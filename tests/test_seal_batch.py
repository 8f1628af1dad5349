"""seal_batch / open_batch back to back: exact restore, owners, lost and damaged fragments."""

from __future__ import annotations

from itertools import combinations

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.errors import IntegrityError, KeyMaterialError
from gateway.piece.cid import Cid, piece_info_from_v2
from gateway.reading import Reading
from gateway.seal import SealedBatch, SignedHeader, open_batch, seal_batch
from gateway.seal.synthetic import SensorFleet

IDENTITY = SigningKey(bytes(range(32)))
OWNERS = [PrivateKey(bytes([i + 1]) * 32) for i in range(3)]
READINGS = SensorFleet(seed=11).readings(300)


def _seal(readings: list[Reading] = READINGS, owners: int = 1, **kwargs: object) -> SealedBatch:
    return seal_batch(
        readings,
        identity=IDENTITY,
        owners=[o.public_key for o in OWNERS[:owners]],
        seq=kwargs.pop("seq", 0),  # type: ignore[arg-type]
        prev=kwargs.pop("prev", None),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def _all(batch: SealedBatch) -> dict[int, bytes]:
    return dict(enumerate(batch.fragments))


@pytest.mark.parametrize("owners", [1, 2, 3])
def test_every_owner_restores_the_exact_readings(owners: int) -> None:
    batch = _seal(owners=owners)
    for owner in OWNERS[:owners]:
        assert open_batch(batch.signed, _all(batch), owner) == READINGS


def test_a_wrong_owner_key_raises_key_material_error() -> None:
    batch = _seal(owners=2)
    with pytest.raises(KeyMaterialError, match="not one of the 2 owner key"):
        open_batch(batch.signed, _all(batch), PrivateKey.generate())


def test_dropping_any_m_fragments_still_restores_exactly() -> None:
    batch = _seal(k=4, m=2)
    for dropped in combinations(range(6), 2):
        kept = {i: f for i, f in _all(batch).items() if i not in dropped}
        assert open_batch(batch.signed, kept, OWNERS[0]) == READINGS


def test_dropping_m_plus_one_fragments_names_the_batch() -> None:
    batch = _seal(seq=0, k=4, m=2)
    kept = {i: batch.fragments[i] for i in (0, 2, 5)}
    with pytest.raises(IntegrityError, match="batch 0: fragments: need 4 fragments, have 3") as err:
        open_batch(batch.signed, kept, OWNERS[0])
    assert (err.value.batch, err.value.field) == (0, "fragments")


def test_a_damaged_fragment_is_skipped_while_k_good_ones_remain() -> None:
    batch = _seal()
    fragments = _all(batch)
    fragments[1] = fragments[1][:-1] + bytes([fragments[1][-1] ^ 0x80])
    assert open_batch(batch.signed, fragments, OWNERS[0]) == READINGS
    del fragments[0], fragments[2]
    with pytest.raises(IntegrityError, match=r"have 3; rejected: piece CID is") as err:
        open_batch(batch.signed, fragments, OWNERS[0])
    assert err.value.batch == 0


def test_header_block_round_trips_and_links_by_cid() -> None:
    first = _seal(seq=0)
    second = _seal(seq=1, prev=first.header_cid)
    assert SignedHeader.from_block(second.header_block) == second.signed
    assert second.signed.header.prev == first.header_cid
    assert Cid.decode(str(first.header_cid)).codec == 0x71
    third = _seal(seq=2, prev=bytes(second.header_cid))
    assert third.signed.header.prev == second.header_cid


def test_header_records_what_design_section_3_lists() -> None:
    batch = _seal(owners=2, k=3, m=3)
    header = batch.signed.header
    assert header.gateway == bytes(IDENTITY.verify_key)
    assert header.count == len(READINGS)
    assert header.time_first_ns == min(r.time.wall_ns for r in READINGS)
    assert header.time_last_ns == max(r.time.wall_ns for r in READINGS)
    assert set(header.sources) == {"mqtt", "serial:pms0"}
    assert header.codec == "readings-cbor-v2"
    assert header.compression.alg == "zstd"
    assert len(header.wrapped_keys) == 2
    assert (header.erasure.k, header.erasure.m) == (3, 3)
    assert len(header.fragments) == 6
    for cid, fragment in zip(header.fragments, batch.fragments, strict=True):
        assert cid.startswith("bafkzcib")
        assert piece_info_from_v2(cid).payload_size == len(fragment) >= 127


def test_a_single_reading_batch_makes_127_byte_fragments() -> None:
    batch = _seal(READINGS[:1])
    assert {len(f) for f in batch.fragments} == {127}
    assert open_batch(batch.signed, _all(batch), OWNERS[0]) == READINGS[:1]


def test_fragments_reveal_no_plaintext() -> None:
    batch = _seal()
    payload = READINGS[0].payload
    assert not any(payload[:16] in f for f in batch.fragments)


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one reading"):
        _seal([])


def test_the_header_must_be_signed_by_the_expected_gateway() -> None:
    batch = _seal()
    with pytest.raises(IntegrityError, match="gateway"):
        open_batch(
            batch.signed, _all(batch), OWNERS[0], gateway_key=SigningKey.generate().verify_key
        )
