"""commP: vectors (zero.csv, FRC-0069, zero-subtree roots), streaming, backends, proofs, CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import subprocess
import sys
from hashlib import sha256
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InputError, StorageError
from gateway.piece import (
    ZERO_ROOTS,
    CommP,
    PieceInfo,
    _pure,
    commp,
    commp_file,
    inclusion_path,
    merkle,
    padded_size_for,
    piece_cid_main,
    piece_cid_v1,
    piece_cid_v2,
    piece_proof,
    tree_layers,
    verify_inclusion,
    zero_root,
)

VECTORS = Path(__file__).parent / "vectors" / "commp"
README = (VECTORS / "README.md").read_text()
BATCH = 127 << 13  # CommP hashes whole batches of this many payload bytes

try:
    from gateway.piece import _commp_native as native
except ImportError:  # pragma: no cover - the extension is optional
    native = None  # type: ignore[assignment]


def zero_csv_rows() -> list[tuple[int, int, str]]:
    with (VECTORS / "zero.csv").open() as handle:
        return [(int(size), int(padded), cid) for size, padded, cid in csv.reader(handle)]


def zero_roots_table() -> dict[int, bytes]:
    found = re.findall(r"^\s*- Z(\d+) \([^)]*\)\s+([0-9a-f]{64})\s*$", README, re.MULTILINE)
    return {int(k): bytes.fromhex(value) for k, value in found}


def _payload(description: str) -> bytes:
    """Payload from a README description: 'D', 'N x 0xHH', joined by ' then '."""
    d_block = b"".join(bytes([value]) * 127 for value in range(4))
    out = b""
    for part in (piece.strip() for piece in description.split(" then ")):
        if part == "D":
            out += d_block
        else:
            match = re.fullmatch(r"(\d+) x 0x([0-9a-fA-F]{2})", part)
            assert match, part
            out += bytes([int(match[2], 16)]) * int(match[1])
    return out


def frc_rows() -> list[tuple[str, bytes, str | None, str]]:
    rows = []
    previous_v1 = None
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[2].startswith("bafkzcib"):
            continue
        v1: str | None = cells[1] or None
        if v1 and v1.startswith("(same"):
            v1 = previous_v1
        previous_v1 = v1
        rows.append((cells[0], _payload(cells[0]), v1, cells[2]))
    return rows


# Further test cases of FRC-0069 itself (filecoin-project/FIPs FRCs/frc-0069.md), not in the table.
FRC_EXTRA = [
    ("0 bytes", b"", "bafkzcibcp4bdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy"),
    (
        "D then 5 x 0x00",
        _payload("D then 5 x 0x00"),
        "bafkzcibd64bqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4",
    ),
]


def bit_fr32(data: bytes) -> bytes:
    """Fr32 the slow, obvious way: copy bits, skipping two zero bits after every 254."""
    assert len(data) % 127 == 0
    out = bytearray(len(data) // 127 * 128)
    for bit in range(len(data) * 8):
        chunk, offset = divmod(bit, 1016)
        target = chunk * 1024 + offset // 254 * 256 + offset % 254
        if data[bit // 8] >> (bit % 8) & 1:
            out[target // 8] |= 1 << (target % 8)
    return bytes(out)


def naive_commp(data: bytes, fr32: object = _pure.fr32_pad) -> tuple[bytes, int]:
    """The whole tree materialised: zero-fill, Fr32, zero-fill to a power of two, hash up."""
    chunks = max(1, -(-len(data) // 127))
    leaves = fr32(data + bytes(chunks * 127 - len(data)))  # type: ignore[operator]
    size = 128
    while size < len(leaves):
        size *= 2
    layer = leaves + bytes(size - len(leaves))
    while len(layer) > 32:
        layer = b"".join(_pure.node_hash(layer[i : i + 64]) for i in range(0, len(layer), 64))
    return layer, size


@pytest.mark.parametrize(("size", "padded", "cid"), zero_csv_rows())
def test_zero_csv_row(size: int, padded: int, cid: str) -> None:
    """Every row of zero.csv: N zero bytes give the listed padded size and piece CID v1."""
    info = commp(bytes(size))
    assert info.padded_size == padded
    assert str(piece_cid_v1(info.root)) == cid


def test_zero_csv_has_rows() -> None:
    assert len(zero_csv_rows()) >= 15


@pytest.mark.parametrize(("name", "payload", "v1", "v2"), frc_rows())
def test_frc0069_row(name: str, payload: bytes, v1: str | None, v2: str) -> None:
    """Every FRC-0069 table row (incl. non-power-of-two payloads): v1 and v2 piece CIDs."""
    info = commp(payload)
    if v1 is not None:
        assert str(piece_cid_v1(info.root)) == v1
    assert str(piece_cid_v2(info)) == v2


def test_frc0069_table_parsed() -> None:
    rows = frc_rows()
    assert len(rows) == 5
    assert [len(payload) for _, payload, _, _ in rows] == [508, 1016, 512, 127, 128]


@pytest.mark.parametrize(("name", "payload", "v2"), FRC_EXTRA)
def test_frc0069_extra_cases(name: str, payload: bytes, v2: str) -> None:
    """FRC-0069's 0-byte payload (127 bytes of padding) and 503-byte-padding cases."""
    assert str(piece_cid_v2(commp(payload))) == v2


def test_frc0069_padding_examples() -> None:
    """FRC-0069 prose: 12 bytes -> 115 padding; 254 -> 0; 256 -> 252; 128 -> 126, height 3."""
    assert commp(bytes(12)).padding == 115
    assert commp(bytes(254)).padding == 0
    assert commp(bytes(256)).padding == 252
    info = commp(bytes(128))
    assert (info.padding, info.height, info.padded_size) == (126, 3, 256)


def test_zero_subtree_roots_match_table() -> None:
    """Z1..Z4 and Z30 from the zero-root table; Z2..Z4 also as commP of all-zero payloads."""
    table = zero_roots_table()
    assert set(table) == {1, 2, 3, 4, 30}
    for k, root in table.items():
        assert ZERO_ROOTS[k] == root
        assert zero_root(k) == root
    for k in (2, 3, 4):
        assert commp(bytes((32 << k) // 128 * 127)).root == table[k]
    with pytest.raises(InputError):
        zero_root(65)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(0, 1024))
def test_streaming_matches_one_shot_small(data: st.DataObject, size: int) -> None:
    """Any chunking of 0..1024 bytes gives the same piece as one-shot and the naive full tree."""
    payload = data.draw(st.binary(min_size=size, max_size=size))
    cuts = sorted(data.draw(st.lists(st.integers(0, size), max_size=8)))
    hasher = CommP()
    for start, end in zip([0, *cuts], [*cuts, size], strict=True):
        hasher.update(payload[start:end])
    streamed = hasher.digest()
    assert streamed == commp(payload)
    assert (streamed.root, streamed.padded_size) == naive_commp(payload)
    assert streamed.payload_size == size


BOUNDARY_SIZES = sorted(
    {max(0, (127 << k) + delta) for k in range(13) for delta in (-2, -1, 0, 1, 2)}
)


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from(BOUNDARY_SIZES), seed=st.integers(0, 2**32 - 1), parts=st.integers(1, 6)
)
def test_streaming_matches_one_shot_at_127_boundaries(size: int, seed: int, parts: int) -> None:
    """Sizes around 127*2^k (k <= 12), random data and random splits, agree with the naive tree."""
    rng = random.Random(seed)
    payload = rng.randbytes(size)
    cuts = sorted(rng.randrange(size + 1) for _ in range(parts - 1))
    hasher = CommP()
    for start, end in zip([0, *cuts], [*cuts, size], strict=True):
        hasher.update(memoryview(payload)[start:end])
    assert hasher.digest() == commp(payload)
    assert (hasher.digest().root, hasher.digest().padded_size) == naive_commp(payload)


@pytest.mark.parametrize("size", [BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 127, 3 * BATCH - 5])
def test_streaming_across_batches(size: int) -> None:
    """Around CommP's internal batch size, odd splits agree with the naive tree."""
    rng = random.Random(size)
    payload = rng.randbytes(size)
    hasher = CommP()
    for start in range(0, size, 300_007):
        hasher.update(payload[start : start + 300_007])
    assert (hasher.digest().root, hasher.digest().padded_size) == naive_commp(payload)


def test_digest_does_not_reset_and_copy_is_independent() -> None:
    hasher = CommP()
    hasher.update(b"a" * 200)
    first = hasher.digest()
    copy = hasher.copy()
    hasher.update(b"b" * 100)
    assert copy.digest() == first
    assert hasher.digest() == commp(b"a" * 200 + b"b" * 100)


@pytest.mark.parametrize("size", [0, 1, 126, 127, 128, 4000])
def test_pure_fr32_matches_bit_by_bit_definition(size: int) -> None:
    """The big-int Fr32 equals a bit-by-bit copy that skips two bits after every 254."""
    data = random.Random(size).randbytes(size // 127 * 127 or 127)
    assert _pure.fr32_pad(data) == bit_fr32(data)


@pytest.mark.skipif(native is None, reason="C extension not built")
@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=127 * 9), exponent=st.integers(0, 9), seed=st.integers(0, 999))
def test_native_and_pure_agree(data: bytes, exponent: int, seed: int) -> None:
    """fr32_pad, hash_layer and subtree_root: the C extension equals the pure reference."""
    assert native is not None
    whole = data[: len(data) // 127 * 127]
    assert native.fr32_pad(whole) == _pure.fr32_pad(whole)
    nodes = data[: len(data) // 64 * 64]
    assert native.hash_layer(nodes) == _pure.hash_layer(nodes)
    subtree = random.Random(seed).randbytes(127 << exponent)
    assert native.subtree_root(subtree) == _pure.subtree_root(subtree)


@pytest.mark.skipif(native is None, reason="C extension not built")
def test_native_rejects_bad_lengths() -> None:
    assert native is not None
    for call, size in (
        (native.fr32_pad, 100),
        (native.hash_layer, 63),
        (native.subtree_root, 127 * 3),
        (native.subtree_root, 0),
    ):
        with pytest.raises(ValueError):
            call(bytes(size))


def test_native_is_selected_when_built_and_env_forces_pure() -> None:
    """BACKEND is native when the extension imports; DEPIN_COMMP_PURE=1 forces the pure path."""
    if native is not None and os.environ.get("DEPIN_COMMP_PURE", "") in ("", "0"):
        assert merkle.BACKEND == "native"
    code = "from gateway.piece import COMMP_BACKEND; print(COMMP_BACKEND)"
    env = {**os.environ, "DEPIN_COMMP_PURE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "pure"


def test_pure_subtree_root_rejects_bad_lengths() -> None:
    for size in (0, 126, 127 * 3):
        with pytest.raises(ValueError):
            _pure.subtree_root(bytes(size))


def test_commp_file_matches_commp(tmp_path: Path) -> None:
    payload = random.Random(7).randbytes(BATCH * 2 + 12345)
    path = tmp_path / "piece.bin"
    path.write_bytes(payload)
    assert commp_file(path) == commp(payload)


def test_commp_file_missing_is_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        commp_file(tmp_path / "absent")
    assert "absent" in str(caught.value)


def test_piece_info_validates() -> None:
    """A PieceInfo that exists is consistent: root, sizes and height agree."""
    good = commp(bytes(300))
    assert good.padded_size == padded_size_for(300) == 512
    for kwargs in (
        {"root": bytes(31)},
        {"root": bytes(31) + b"\xff"},
        {"height": 3},
        {"padded_size": 1024},
        {"payload_size": 100},
        {"payload_size": 509},
        {"payload_size": -1},
    ):
        fields = {
            "root": good.root,
            "payload_size": 300,
            "padded_size": 512,
            "height": 4,
            **kwargs,
        }
        with pytest.raises(InputError):
            PieceInfo(**fields)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        padded_size_for(-1)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 127 * 40), seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 2**20))
def test_inclusion_proofs_verify_and_flipped_bits_fail(size: int, seed: int, pick: int) -> None:
    """piece_proof and tree_layers/inclusion_path give the same path; it verifies against the
    commP root as PDP does, and any flipped bit in leaf, path or index fails."""
    rng = random.Random(seed)
    payload = rng.randbytes(size)
    info = commp(payload)
    index = pick % (info.padded_size // 32)
    leaf, path = piece_proof(payload, index)
    assert verify_inclusion(info.root, leaf, index, path, info.height)

    chunks = max(1, -(-size // 127))
    layers = tree_layers(merkle.fr32_pad(payload + bytes(chunks * 127 - size)))
    assert layers[-1] == info.root
    if index < len(layers[0]) // 32:
        assert layers[0][index * 32 : index * 32 + 32] == leaf
        assert inclusion_path(layers, index) == path
    else:
        assert leaf == bytes(32)  # beyond the data: zero fill

    bit = rng.randrange(256)
    flipped_leaf = bytearray(leaf)
    flipped_leaf[bit // 8] ^= 1 << (bit % 8)
    assert not verify_inclusion(info.root, bytes(flipped_leaf), index, path, info.height)
    level = rng.randrange(len(path))
    bad_path = list(path)
    flipped = bytearray(bad_path[level])
    flipped[bit // 8] ^= 1 << (bit % 8)
    bad_path[level] = bytes(flipped)
    assert not verify_inclusion(info.root, leaf, index, bad_path, info.height)
    other = index ^ (1 << rng.randrange(info.height))
    if _leaf_at(payload, other) != leaf:
        assert not verify_inclusion(info.root, leaf, other, path, info.height)


def _leaf_at(payload: bytes, index: int) -> bytes:
    chunk = payload[index // 4 * 127 : index // 4 * 127 + 127]
    leaves = _pure.fr32_pad(chunk + bytes(127 - len(chunk)))
    return leaves[index % 4 * 32 : index % 4 * 32 + 32]


def test_verify_inclusion_rejects_malformed_input() -> None:
    payload = bytes(range(256)) * 2
    info = commp(payload)
    leaf, path = piece_proof(payload, 5)
    assert verify_inclusion(info.root, leaf, 5, path, info.height)
    assert not verify_inclusion(info.root, leaf, 5, path[:-1], info.height)
    assert not verify_inclusion(info.root, leaf, 5 + (1 << info.height), path, info.height)
    assert not verify_inclusion(info.root, leaf[:31], 5, path, info.height)
    assert not verify_inclusion(info.root, leaf, 5, [*path[:-1], path[-1][:31]], info.height)
    with pytest.raises(InputError):
        piece_proof(payload, info.padded_size // 32)
    with pytest.raises(InputError):
        tree_layers(b"")
    with pytest.raises(InputError):
        inclusion_path(tree_layers(bytes(64)), 2)


def test_pdp_node_hash_is_sha256_with_trunc254_mask() -> None:
    """One PDP step: sha256(left || right) with the top two bits of the last byte cleared."""
    left, right = bytes(range(32)), bytes(range(32, 64))
    digest = bytearray(sha256(left + right).digest())
    digest[31] &= 0x3F
    assert merkle.node_hash(left + right) == bytes(digest)
    assert verify_inclusion(bytes(digest), left, 0, [right], 1)
    assert verify_inclusion(bytes(digest), right, 1, [left], 1)


def test_piece_cid_main_text_and_json(tmp_path: Path) -> None:
    """The CLI core prints sizes and both piece CIDs per file; JSON is one object per line."""
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(_payload("D"))
    second.write_bytes(bytes(128))
    out = io.StringIO()
    assert piece_cid_main([str(first), str(second)], True, out) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0] == {
        "file": str(first),
        "payload_size": 508,
        "padded_size": 512,
        "piece_cid_v1": "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
        "piece_cid_v2": "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
    }
    assert records[1]["piece_cid_v2"] == (
        "bafkzcibcpybwiktap34inmaex4wbs6cghlq5i2j2yd2bb2zndn5ep7ralzphkdy"
    )
    text = io.StringIO()
    assert piece_cid_main([str(first)], False, text) == 0
    assert "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi" in text.getvalue()
    assert "508 bytes" in text.getvalue()


def test_piece_cid_main_missing_file_is_one_line_and_status_1(tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    good.write_bytes(bytes(200))
    out, err = io.StringIO(), io.StringIO()
    status = piece_cid_main([str(tmp_path / "missing"), str(good)], True, out, err)
    assert status == 1
    assert len(err.getvalue().splitlines()) == 1
    assert "missing" in err.getvalue()
    assert json.loads(out.getvalue())["payload_size"] == 200
