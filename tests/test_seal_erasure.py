"""Erasure coding: any k of k + m fragments restore the input; fewer fail naming the batch."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import IntegrityError
from gateway.seal import erasure


@given(st.binary(max_size=3000), st.integers(1, 6), st.integers(0, 4), st.data())
def test_any_k_fragments_restore_exactly(data: bytes, k: int, m: int, draw: st.DataObject) -> None:
    params, fragments = erasure.encode(data, k, m)
    assert len(fragments) == k + m
    assert all(len(f) == params.fragment_size >= erasure.MIN_FRAGMENT for f in fragments)
    chosen = draw.draw(st.permutations(range(k + m)))[:k]
    assert erasure.decode(params, {i: fragments[i] for i in chosen}, 7) == data


def test_every_k_subset_of_the_default_4_plus_2_works() -> None:
    data = bytes(range(256)) * 9
    params, fragments = erasure.encode(data)
    for subset in combinations(range(6), 4):
        assert erasure.decode(params, {i: fragments[i] for i in subset}, 0) == data


def test_small_inputs_make_127_byte_fragments() -> None:
    params, fragments = erasure.encode(b"tiny", 4, 2)
    assert {len(f) for f in fragments} == {127}
    assert params.fragment_size == 127
    assert params.length == 4


def test_too_few_fragments_name_the_batch() -> None:
    params, fragments = erasure.encode(b"a" * 1000)
    with pytest.raises(IntegrityError, match="batch 42: fragments: need 4 fragments, have 3"):
        erasure.decode(params, {0: fragments[0], 2: fragments[2], 5: fragments[5]}, 42)


def test_wrong_size_or_index_is_an_integrity_error() -> None:
    params, fragments = erasure.encode(b"a" * 1000)
    with pytest.raises(IntegrityError, match=r"fragments\[1\]"):
        erasure.decode(params, {0: fragments[0], 1: fragments[1][:-1]}, 1)
    with pytest.raises(IntegrityError, match=r"fragments\[9\]"):
        erasure.decode(params, {9: fragments[0]}, 1)
