"""zstd with per-family dictionaries: referenced by id, stored encrypted, ratio reported."""

from __future__ import annotations

import gzip

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.errors import IntegrityError, KeyMaterialError
from gateway.reading import Reading, ReceiveTime
from gateway.seal import DictionaryTrainer, open_batch, open_dictionary, seal_batch, seal_dictionary
from gateway.seal.codec import encode_readings
from gateway.seal.compress import compress, decompress, topic_family
from gateway.seal.dictionary import object_id
from gateway.seal.synthetic import SensorFleet

IDENTITY = SigningKey.generate()
OWNER = PrivateKey.generate()


def _trained(seed: int = 21, count: int = 3000) -> tuple[SensorFleet, DictionaryTrainer]:
    fleet = SensorFleet(seed=seed)
    trainer = DictionaryTrainer()
    for reading in fleet.readings(count):
        trainer.observe(reading)
    return fleet, trainer


def _mqtt(topic: str) -> Reading:
    return Reading(0, "mqtt", topic, ReceiveTime(0, 0, "b", True), b"{}")


def test_topic_family_wildcards_ids_and_the_last_level() -> None:
    assert topic_family(_mqtt("depin/berlin/node-0042/air")) == "depin/berlin/+/+"
    assert topic_family(_mqtt("sensors/kitchen/temp")) == "sensors/kitchen/+"
    assert topic_family(_mqtt("x")) == "+"
    serial = Reading(0, "serial:pms0", "/dev/ttyUSB0", ReceiveTime(0, 0, "b", True), b"BM")
    assert topic_family(serial) == "serial:pms0"


def test_trainer_keeps_a_bounded_window_per_family() -> None:
    _, trainer = _trained()
    families = trainer.families()
    assert "serial:pms0" in families
    assert any(f.endswith("/+/+") for f in families)
    assert all(n <= 512 for n in families.values())


def test_too_little_sample_data_falls_back_to_no_dictionary() -> None:
    trainer = DictionaryTrainer()
    for reading in SensorFleet(seed=1).readings(20):
        trainer.observe(reading)
    assert trainer.train() is None
    batch = seal_batch(
        SensorFleet().readings(5), identity=IDENTITY, owners=[OWNER.public_key], seq=0, prev=None
    )
    assert batch.dictionary is None
    assert batch.signed.header.compression.dictionary is None


def test_dictionary_is_referenced_by_id_and_stored_encrypted() -> None:
    fleet, trainer = _trained()
    zdict = trainer.train()
    assert zdict is not None
    stored = seal_dictionary(zdict, [OWNER.public_key])
    assert stored.id == object_id(stored.data)
    assert stored.id.startswith("bafkrei")
    assert zdict.data[-256:] not in stored.data  # dictionary content never leaves in clear
    assert open_dictionary(stored.data, OWNER) == zdict
    readings = fleet.readings(100)
    batch = seal_batch(
        readings, identity=IDENTITY, owners=[OWNER.public_key], seq=0, prev=None, dictionary=stored
    )
    assert batch.signed.header.compression.dictionary == stored.id
    assert batch.dictionary == stored
    fragments = dict(enumerate(batch.fragments))
    assert open_batch(batch.signed, fragments, OWNER, stored.data) == readings
    with pytest.raises(IntegrityError, match=r"compression: needs dictionary object bafkrei"):
        open_batch(batch.signed, fragments, OWNER)
    other = seal_dictionary(zdict, [OWNER.public_key])
    with pytest.raises(IntegrityError, match="compression: dictionary object is"):
        open_batch(batch.signed, fragments, OWNER, other.data)


def test_a_dictionary_not_sealed_to_every_owner_is_refused() -> None:
    _, trainer = _trained()
    zdict = trainer.train()
    assert zdict is not None
    stored = seal_dictionary(zdict, [OWNER.public_key])
    with pytest.raises(KeyMaterialError, match="is not sealed to"):
        seal_batch(
            SensorFleet().readings(5),
            identity=IDENTITY,
            owners=[OWNER.public_key, PrivateKey.generate().public_key],
            seq=0,
            prev=None,
            dictionary=stored,
        )


def test_decompressing_with_the_wrong_dictionary_fails_cleanly() -> None:
    fleet, trainer = _trained()
    zdict = trainer.train()
    assert zdict is not None
    packed = compress(encode_readings(fleet.readings(50)), level=9, dictionary=zdict)
    with pytest.raises(ValueError, match="zstd"):
        decompress(packed)


def test_compression_ratio_against_gzip_and_plain_zstd() -> None:
    """Reports the ratios; asserts only what holds robustly (see the printed figures).

    The brief's target (2x gzip -6) does not hold on realistic readings: the remaining bytes are
    the entropy of the values and nanosecond receive times. Measured: ~1.2-1.3x gzip -6.
    """
    fleet, trainer = _trained()
    zdict = trainer.train()
    assert zdict is not None
    lines = []
    for size in (50, 200, 1000):
        totals = {"plain": 0, "gzip": 0, "zstd": 0, "dict": 0}
        for _ in range(5):
            plain = encode_readings(fleet.readings(size))
            totals["plain"] += len(plain)
            totals["gzip"] += len(gzip.compress(plain, 6, mtime=0))
            totals["zstd"] += len(compress(plain, level=9))
            totals["dict"] += len(compress(plain, level=9, dictionary=zdict))
        ratio = {k: totals["plain"] / v for k, v in totals.items() if k != "plain"}
        lines.append(
            f"{size:5d} readings: gzip-6 {ratio['gzip']:.2f}x  zstd-9 {ratio['zstd']:.2f}x  "
            f"zstd-9+dict {ratio['dict']:.2f}x  (= {ratio['dict'] / ratio['gzip']:.2f}x gzip)"
        )
        assert ratio["dict"] > 1.05 * ratio["gzip"]
        assert ratio["dict"] >= ratio["zstd"] * 0.99
        if size <= 200:
            assert ratio["dict"] > 1.04 * ratio["zstd"]
    print("\n" + "\n".join(lines))
