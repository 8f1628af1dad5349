"""The vault: crash-safe writes, half-written batches discarded, sequence numbers never repeat."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from gateway.errors import StorageError
from gateway.seal import SealedBatch, Vault, open_batch, seal_batch
from gateway.seal.synthetic import SensorFleet

IDENTITY = SigningKey(b"\x05" * 32)
OWNER = PrivateKey(b"\x06" * 32)
FLEET = SensorFleet(seed=8)


def _next(vault: Vault) -> SealedBatch:
    head = vault.head()
    return seal_batch(
        FLEET.readings(10),
        identity=IDENTITY,
        owners=[OWNER.public_key],
        seq=vault.next_seq(),
        prev=head[1] if head else None,
    )


def test_layout_and_read_back(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    batch = _next(vault)
    directory = vault.put(batch)
    assert directory == tmp_path / "vault" / "000000000000"
    assert sorted(p.name for p in directory.iterdir()) == [
        "frag-0.bin", "frag-1.bin", "frag-2.bin", "frag-3.bin", "frag-4.bin", "frag-5.bin",
        "header.cbor",
    ]  # fmt: skip
    assert (tmp_path / "vault" / "FORMAT").read_text() == "depin-vault 1\n"
    reopened = Vault(tmp_path)
    assert reopened.header(0) == batch.signed
    assert reopened.header_block(0) == batch.header_block
    assert reopened.head() == (0, batch.header_cid)
    restored = open_batch(reopened.header(0), reopened.fragments(0), OWNER)
    assert len(restored) == 10


def test_sequence_continues_across_reopen_and_never_repeats(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    for _ in range(3):
        vault.put(_next(vault))
    vault = Vault(tmp_path)
    assert vault.next_seq() == 3
    with pytest.raises(StorageError, match="batch 1 is out of sequence: the next batch is 3"):
        vault.put(
            seal_batch(
                FLEET.readings(3),
                identity=IDENTITY,
                owners=[OWNER.public_key],
                seq=1,
                prev=vault.head()[1],  # type: ignore[index]
            )
        )


def test_a_crash_before_the_rename_leaves_nothing_behind(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.put(_next(vault))
    half = vault.path / f".tmp-000000000001-{os.getpid() + 1}"
    half.mkdir()
    (half / "frag-0.bin").write_bytes(b"partial")
    reopened = Vault(tmp_path)
    assert half in reopened.collected
    assert not half.exists()
    assert reopened.next_seq() == 1


def test_a_trailing_batch_dir_without_header_is_collected(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.put(_next(vault))
    orphan = vault.path / "000000000001"
    orphan.mkdir()
    (orphan / "frag-0.bin").write_bytes(b"x" * 127)
    reopened = Vault(tmp_path)
    assert reopened.collected == [orphan]
    assert reopened.next_seq() == 1
    reopened.put(_next(reopened))
    assert reopened.seqs() == [0, 1]


def test_a_headerless_dir_inside_the_chain_is_kept_for_verify(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    for _ in range(3):
        vault.put(_next(vault))
    (vault.path / "000000000001" / "header.cbor").unlink()
    reopened = Vault(tmp_path)
    assert reopened.collected == []
    assert reopened.seqs() == [0, 1, 2]
    assert reopened.next_seq() == 3


def test_an_empty_vault_is_collected_back_to_seq_zero(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    (vault.path / "000000000000").mkdir()
    assert Vault(tmp_path).next_seq() == 0


def test_eviction_keeps_the_header_so_seq_still_advances(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    for _ in range(2):
        vault.put(_next(vault))
    vault.evict_fragments(0)
    vault.evict_fragments(1)
    reopened = Vault(tmp_path)
    assert reopened.fragments(1) == {}
    assert reopened.next_seq() == 2


def test_an_unknown_vault_format_is_refused(tmp_path: Path) -> None:
    Vault(tmp_path)
    (tmp_path / "vault" / "FORMAT").write_text("depin-vault 9\n")
    with pytest.raises(StorageError, match="unknown vault format"):
        Vault(tmp_path)


def test_dictionary_object_is_stored_with_its_batch(tmp_path: Path) -> None:
    from gateway.seal import DictionaryTrainer, seal_dictionary

    trainer = DictionaryTrainer()
    for reading in SensorFleet(seed=2).readings(2000):
        trainer.observe(reading)
    zdict = trainer.train()
    assert zdict is not None
    stored = seal_dictionary(zdict, [OWNER.public_key])
    vault = Vault(tmp_path)
    batch = seal_batch(
        FLEET.readings(10), identity=IDENTITY, owners=[OWNER.public_key], seq=0, prev=None,
        dictionary=stored,
    )  # fmt: skip
    vault.put(batch)
    data = vault.dictionary(0, stored.id)
    assert data == stored.data
    assert open_batch(vault.header(0), vault.fragments(0), OWNER, data) is not None


def test_bytes_used_follows_put_and_eviction_and_matches_the_disk(tmp_path: Path) -> None:
    """The disk budget counts the vault without walking it: the counter must stay exact."""
    vault = Vault(tmp_path)

    def on_disk() -> int:
        return sum(p.stat().st_size for p in vault.path.rglob("*") if p.is_file())

    for _ in range(3):
        vault.put(_next(vault))
    assert vault.bytes_used == on_disk()
    before = vault.bytes_used
    vault.evict_fragments(1)
    assert vault.bytes_used == on_disk() < before
    assert Vault(tmp_path).bytes_used == on_disk()
