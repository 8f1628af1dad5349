"""verify: every edit, gap, reorder, repeat and truncation is found and named (batch, field)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.errors import IntegrityError
from gateway.seal import KeyRotation, SealedBatch, SignedHeader, Vault, seal_batch, verify_chain
from gateway.seal.synthetic import SensorFleet
from gateway.seal.verify import verify_vault

IDENTITY = SigningKey(b"\x07" * 32)
GATEWAY = IDENTITY.verify_key
OWNER = PrivateKey(b"\x09" * 32)


def _chain(count: int = 5, identity: SigningKey = IDENTITY) -> list[SealedBatch]:
    fleet = SensorFleet(seed=5)
    batches: list[SealedBatch] = []
    for seq in range(count):
        batches.append(
            seal_batch(
                fleet.readings(20),
                identity=identity,
                owners=[OWNER.public_key],
                seq=seq,
                prev=batches[-1].header_cid if batches else None,
            )
        )
    return batches


CHAIN = _chain()


def _where(problems: tuple[IntegrityError, ...]) -> set[tuple[int | str, str]]:
    return {(p.batch, p.field) for p in problems}


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    vault = Vault(tmp_path)
    for batch in CHAIN:
        vault.put(batch)
    return vault


def test_an_intact_chain_verifies_with_fragments() -> None:
    fragments = {b.seq: dict(enumerate(b.fragments)) for b in CHAIN}
    report = verify_chain(
        [b.signed for b in CHAIN],
        fragments.get,
        gateway_key=GATEWAY,
        expected_last_seq=4,
        expected_head=CHAIN[-1].header_cid,
    )
    assert report.ok, report.problems
    assert (report.checked, report.last_seq, report.head) == (5, 4, CHAIN[-1].header_cid)
    assert report.fragments_checked == 30


def test_an_intact_vault_verifies(vault: Vault) -> None:
    report = verify_vault(vault, gateway_key=GATEWAY, expected_last_seq=4)
    assert report.ok, report.problems
    report.raise_first()


def test_a_different_gateway_key_fails_every_signature() -> None:
    report = verify_chain([b.signed for b in CHAIN], gateway_key=SigningKey.generate().verify_key)
    assert _where(report.problems) == {(s, "gateway") for s in range(5)}
    with pytest.raises(IntegrityError, match="batch 0: gateway"):
        report.raise_first()


def test_every_single_byte_flip_of_a_stored_header_is_named(vault: Vault) -> None:
    path = vault.path / f"{2:012d}" / "header.cbor"
    original = path.read_bytes()
    fields: set[str] = set()
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        path.write_bytes(bytes(damaged))
        report = verify_vault(vault, gateway_key=GATEWAY, check_fragments=False)
        assert not report.ok, f"flip at byte {position} went unnoticed"
        named = _where(report.problems)
        assert any(batch == 2 for batch, _ in named), (position, report.problems)
        fields |= {field for batch, field in named if batch == 2}
        if (2, "signature") in named:  # it parsed: the next batch's link no longer matches
            assert (3, "prev") in named
    path.write_bytes(original)
    assert {"signature", "header", "keys", "fragments[0]"} <= fields


def test_every_fragment_byte_flip_is_named_by_index(vault: Vault) -> None:
    directory = vault.path / f"{1:012d}"
    for index in range(6):
        path = directory / f"frag-{index}.bin"
        original = path.read_bytes()
        for position in (0, len(original) // 2, len(original) - 1):
            damaged = bytearray(original)
            damaged[position] ^= 0x10
            path.write_bytes(bytes(damaged))
            report = verify_vault(vault, gateway_key=GATEWAY)
            assert _where(report.problems) == {(1, f"fragments[{index}]")}
        path.write_bytes(original)


def test_a_deleted_batch_is_named(vault: Vault) -> None:
    shutil.rmtree(vault.path / f"{2:012d}")
    report = verify_vault(vault, gateway_key=GATEWAY)
    assert _where(report.problems) == {(2, "seq")}
    assert "batch 2 is missing" in str(report.problems[0])


def test_deleting_several_batches_names_the_range() -> None:
    report = verify_chain([CHAIN[0].signed, CHAIN[4].signed], gateway_key=GATEWAY)
    assert [str(p) for p in report.problems] == [
        "batch 1: seq: batches 1..3 are missing (batch 4 follows 0)"
    ]


def test_swapped_batches_are_named_as_out_of_order() -> None:
    headers = [CHAIN[0].signed, CHAIN[2].signed, CHAIN[1].signed, CHAIN[3].signed]
    report = verify_chain(headers, gateway_key=GATEWAY)
    assert _where(report.problems) == {(1, "seq"), (2, "seq")}


def test_swapped_vault_directories_are_named(vault: Vault) -> None:
    one, two = vault.path / f"{1:012d}", vault.path / f"{2:012d}"
    one.rename(vault.path / "x")
    two.rename(one)
    (vault.path / "x").rename(two)
    report = verify_vault(vault, gateway_key=GATEWAY)
    assert _where(report.problems) == {(1, "seq"), (2, "seq")}


def test_a_repeated_batch_is_named() -> None:
    headers = [b.signed for b in CHAIN[:3]] + [CHAIN[2].signed]
    report = verify_chain(headers, gateway_key=GATEWAY)
    assert [str(p) for p in report.problems] == ["batch 2: seq: batch 2 appears twice"]


def test_truncation_needs_and_uses_the_recorded_head() -> None:
    headers = [b.signed for b in CHAIN[:3]]
    assert verify_chain(headers, gateway_key=GATEWAY).ok  # undetectable without a head
    report = verify_chain(headers, gateway_key=GATEWAY, expected_last_seq=4)
    assert [str(p) for p in report.problems] == [
        "batch 3: seq: batches 3..4 are missing (the recorded head is 4)"
    ]
    report = verify_chain(headers, gateway_key=GATEWAY, expected_head=CHAIN[4].header_cid)
    assert _where(report.problems) == {(2, "head")}


def test_a_missing_start_is_named_unless_the_chain_may_start_later() -> None:
    headers = [b.signed for b in CHAIN[2:]]
    report = verify_chain(headers, gateway_key=GATEWAY)
    assert _where(report.problems) == {(0, "seq")}
    assert verify_chain(headers, gateway_key=GATEWAY, first_seq=None).ok


def test_a_replaced_batch_breaks_the_next_link() -> None:
    """A validly signed but different batch 2 (e.g. a fork) is caught by batch 3's prev link."""
    fork = seal_batch(
        SensorFleet(seed=99).readings(5),
        identity=IDENTITY,
        owners=[OWNER.public_key],
        seq=2,
        prev=CHAIN[1].header_cid,
    )
    headers = [CHAIN[0].signed, CHAIN[1].signed, fork.signed, CHAIN[3].signed]
    report = verify_chain(headers, gateway_key=GATEWAY)
    assert _where(report.problems) == {(3, "prev")}


def test_key_rotation_hands_over_to_the_certified_key() -> None:
    new = SigningKey.generate()
    first = seal_batch(
        SensorFleet().readings(5),
        identity=IDENTITY,
        owners=[OWNER.public_key],
        seq=0,
        prev=None,
        rotation=KeyRotation.certify(IDENTITY, new.verify_key),
    )
    second = seal_batch(
        SensorFleet().readings(5),
        identity=new,
        owners=[OWNER.public_key],
        seq=1,
        prev=first.header_cid,
    )
    assert SignedHeader.from_block(first.header_block).header.rotation is not None
    assert verify_chain([first.signed, second.signed], gateway_key=GATEWAY).ok
    forged = seal_batch(
        SensorFleet().readings(5),
        identity=IDENTITY,
        owners=[OWNER.public_key],
        seq=0,
        prev=None,
        rotation=KeyRotation.certify(SigningKey.generate(), new.verify_key),
    )
    second = seal_batch(
        SensorFleet().readings(5), identity=new, owners=[OWNER.public_key], seq=1,
        prev=forged.header_cid,
    )  # fmt: skip
    report = verify_chain([forged.signed, second.signed], gateway_key=GATEWAY)
    assert _where(report.problems) == {(0, "rotation"), (1, "gateway")}
